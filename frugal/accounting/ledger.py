"""The append-only record of every request's cost, every batch's busy time and every run.

The hot path only puts a tuple on a queue; one writer thread inserts rows in batches (SQLite in
WAL mode), so a request never waits on the disk. ``flush`` returns once every row recorded
before it is committed: on shutdown nothing accepted is lost. The writer survives bad rows and
a file that takes no writes (ledger_writer.py); ``healthy`` and ``stats`` say how it is doing,
for readiness and ``/metrics`` (ledger_health.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from frugal.accounting.ledger_health import LedgerHealth, LedgerStats
from frugal.accounting.ledger_schema import SCHEMA, connect, ensure_schema
from frugal.accounting.ledger_writer import DEFAULT_MAX_HELD_ROWS, Entry, LedgerWriter
from frugal.errors import ConfigError

log = logging.getLogger("frugal.ledger")


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class LedgerRow:
    """One answered request (any status); ``cost_usd`` is the sum of its items' shares.

    ``cost_usd == model_usd + overhead_usd``: the model's share (busy slot time, upstream
    tokens) and the server's own work. A row that leaves both parts at 0 is all model share.
    """

    ts: float
    request_id: str
    endpoint: str
    model: str
    version: str
    items: int
    batch_size: float
    queue_ms: float
    compute_ms: float
    latency_ms: float
    cost_usd: float
    status: int
    cache: str = "bypass"  # hit | miss | partial | bypass
    saved_usd: float = 0.0  # what its cache hits would have cost
    key: str = ""  # the API key's name ("" without auth); never the secret
    tokens: int = 0  # tokens the models reported for its items
    route: str = ""  # cascade tiers and items stopped at each: "small:1*7>large:1*3"
    degraded: bool = False  # a selection rule served a cheaper answer (load, deadline)
    shadow: bool = False  # shadow spend: a copy's cost, never an answer anyone got
    model_usd: float = 0.0  # the model's share of cost_usd
    overhead_usd: float = 0.0  # the server's own work (HTTP, JSON, admission, ledger) for it
    tier_costs: str = ""  # model_usd per version that ran its items: see tier_costs.py
    tier: str = ""  # the caller's tier (server.priority serves by it); "" for none


@dataclass(frozen=True, slots=True)
class PayloadRow:
    """A captured request and answer (opt-in per endpoint), already redacted."""

    ts: float
    request_id: str
    endpoint: str
    key: str
    request: str  # JSON
    response: str  # JSON
    expires: float  # unix seconds; pruned after


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class BatchRow:
    """One ``predict_batch`` run: why it went, how full it was, what it cost."""

    ts: float
    model: str
    version: str
    size: int
    reason: str
    busy_s: float
    cost_usd: float
    queue_ms_mean: float
    queue_ms_max: float
    failed: int
    padded_size: int | None = None
    padding_waste: float | None = None


class Ledger(Protocol):
    """Called by the serving path on the event loop; ``record`` must never block it."""

    def record(self, row: LedgerRow) -> None: ...

    def add_overhead(self, overhead_usd: float) -> None:
        """Every request recorded since the last call, shadow copies aside, gains
        ``overhead_usd`` of the server's work (its cost was its model share): one call per cost
        interval, never a call per row."""
        ...

    def record_batch(self, row: BatchRow) -> None: ...

    def record_payload(self, row: PayloadRow) -> None: ...

    async def flush(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """False while the ledger cannot write (readiness follows it): answers would go
        unrecorded."""
        ...


class QueuedLedger:
    """What every ledger store shares: the hot path only puts a tuple on a queue, and one writer
    thread (started by the store's ``open``) commits them. Stores differ only in ``open``.

    The run's row says when it started (``started``, before its models loaded), when it could
    answer (``ready``), that it is still alive (``heartbeat``) and when it stopped (``stopped``):
    a run killed without a word is billed to its last heartbeat, never to "now".
    """

    def __init__(
        self,
        where: str,
        *,
        flush_interval_ms: float = 200.0,
        heartbeat_s: float = 2.0,
        max_held_rows: int = DEFAULT_MAX_HELD_ROWS,
    ) -> None:
        if flush_interval_ms <= 0 or heartbeat_s <= 0:
            raise ValueError("flush_interval_ms and heartbeat_s must be > 0")
        if max_held_rows < 0:
            raise ValueError("max_held_rows must be >= 0")
        self.where = where  # for log lines: a file path, or a database URL (no password)
        self.flush_interval_s = flush_interval_ms / 1000
        self.heartbeat_s = heartbeat_s
        self.max_held_rows = max_held_rows
        self.run_id = uuid.uuid4().hex[:12]
        self.health = LedgerHealth(where)
        self._queue: queue.SimpleQueue[Entry] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    @property
    def healthy(self) -> bool:
        """The writer runs and its commits succeed (or have failed only briefly): False before
        ``open``, after ``close``, and while the store takes no writes."""
        running = self._thread is not None and self._thread.is_alive() and not self._closed
        return running and self.health.healthy

    def stats(self) -> LedgerStats:
        """Rows written, rejected, lost and held so far, for ``/metrics``."""
        return dataclasses.replace(self.health.stats(), healthy=self.healthy)

    def open(
        self,
        *,
        instance: str,
        price_usd_per_hour: float,
        slots: float,
        started_at: float | None = None,
    ) -> None:
        """Create the tables, write this run's start and start the writer thread.

        ``started_at`` (unix seconds, default now) is when the process started, before its
        models loaded: loading is paid for too, and the report shows it as start-up.
        """
        raise NotImplementedError

    def _start(self, run: Callable[[], None]) -> None:
        """Start the writer thread (``open`` calls it once the run's row is written)."""
        self._thread = threading.Thread(target=run, name="frugal-ledger", daemon=True)
        self._thread.start()

    @staticmethod
    def _started(started_at: float | None, now: float) -> float:
        started = now if started_at is None else started_at
        if started > now:
            raise ValueError(f"started_at {started} is after now ({now})")
        return started

    def mark_ready(self, at: float | None = None) -> None:
        """Stamp when this run could first answer (unix seconds, default now): start-up ends.

        Queued like a row (the caller is on the event loop); the first call wins.
        """
        self._queue.put(("runs_ready", (time.time() if at is None else at, self.run_id)))
        self._wake.set()

    def record(self, row: LedgerRow) -> None:
        # Fields listed by hand: dataclasses.astuple deep-copies, ~150 us a row on the hot path.
        model_usd = row.model_usd if row.model_usd or row.overhead_usd else row.cost_usd
        self._queue.put((
            "requests",
            (row.ts, self.run_id, row.request_id, row.endpoint, row.model, row.version, row.items,
             row.batch_size, row.queue_ms, row.compute_ms, row.latency_ms, row.cost_usd,
             row.status, row.cache, row.saved_usd, row.key, row.tokens, row.route,
             int(row.degraded), int(row.shadow), model_usd, row.overhead_usd, row.tier_costs,
             row.tier),
        ))  # fmt: skip

    def add_overhead(self, overhead_usd: float) -> None:
        # A marker in the queue, after the interval's rows: the writer turns it into one UPDATE
        # of the rows inserted since the last marker. Holding the rows back and writing them
        # once with their share made the event loop (or the writer, holding the GIL) build a
        # second's thousands of rows at once: a p99 spike every interval.
        self._queue.put(("overhead", (overhead_usd,)))

    def record_payload(self, row: PayloadRow) -> None:
        self._queue.put((
            "payloads",
            (row.ts, row.request_id, row.endpoint, row.key, row.request, row.response, row.expires),
        ))  # fmt: skip

    def record_batch(self, row: BatchRow) -> None:
        self._queue.put((
            "batches",
            (row.ts, self.run_id, row.model, row.version, row.size, row.reason, row.busy_s,
             row.cost_usd, row.queue_ms_mean, row.queue_ms_max, row.failed, row.padded_size,
             row.padding_waste),
        ))  # fmt: skip

    async def flush(self) -> None:
        """Wait (off the loop) until every row recorded so far is committed."""
        await asyncio.to_thread(self.flush_sync)

    def flush_sync(self, timeout_s: float = 30.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()
        self._queue.put(done)
        self._wake.set()
        if not done.wait(timeout_s):
            log.error("ledger %s: flush timed out after %.0f s", self.where, timeout_s)

    def close(self) -> None:
        """Flush, stamp this run's end (so idle time is billed up to here) and stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(("runs_stop", (time.time(), self.run_id)))
        self.flush_sync()
        self._queue.put(("stop", ()))
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


class SqliteLedger(QueuedLedger):
    """The embedded default ledger: one SQLite file, one writer thread."""

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_ms: float = 200.0,
        heartbeat_s: float = 2.0,
        max_held_rows: int = DEFAULT_MAX_HELD_ROWS,
    ) -> None:
        self.path = Path(path)
        super().__init__(str(self.path), flush_interval_ms=flush_interval_ms,
                         heartbeat_s=heartbeat_s, max_held_rows=max_held_rows)  # fmt: skip

    def open(
        self,
        *,
        instance: str,
        price_usd_per_hour: float,
        slots: float,
        started_at: float | None = None,
    ) -> None:
        now = time.time()
        started = self._started(started_at, now)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = connect(self.path)
            try:
                ensure_schema(db)
                db.execute(
                    "INSERT INTO runs (run_id, started, stopped, instance, price_usd_per_hour, "
                    "slots, pid, heartbeat, ready) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, NULL)",
                    (self.run_id, started, instance, price_usd_per_hour, slots, os.getpid(), now),
                )
                db.commit()
                # The writer keeps this connection: the file it writes is the one set up here.
                writer = LedgerWriter(
                    db, self.path, self.run_id, self._queue, self._wake, self.health,
                    flush_interval_s=self.flush_interval_s, heartbeat_s=self.heartbeat_s,
                    max_held_rows=self.max_held_rows,
                )  # fmt: skip
            except BaseException:
                db.close()
                raise
        except (OSError, sqlite3.Error) as exc:  # `frugal validate` checks the path; races remain
            raise ConfigError(
                f"cannot open the ledger: {exc}", field="ledger.path", file=str(self.path),
                hint="ledger.path must name a SQLite file (or none yet) in a writable folder",
            ) from None  # fmt: skip
        self._start(writer.run)


__all__ = [
    "SCHEMA",
    "BatchRow",
    "Ledger",
    "LedgerRow",
    "LedgerStats",
    "PayloadRow",
    "QueuedLedger",
    "SqliteLedger",
    "connect",
    "ensure_schema",
]
