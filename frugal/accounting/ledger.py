"""The append-only record of every request's cost, every batch's busy time and every run.

The hot path only puts a tuple on a queue; one writer thread inserts rows in batches (SQLite in
WAL mode), so a request never waits on the disk. ``flush`` returns once every row recorded
before it is committed: on shutdown nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

log = logging.getLogger("frugal.ledger")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  ts REAL NOT NULL, run_id TEXT NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
  model TEXT NOT NULL, version TEXT NOT NULL, items INTEGER NOT NULL, batch_size REAL NOT NULL,
  queue_ms REAL NOT NULL, compute_ms REAL NOT NULL, latency_ms REAL NOT NULL,
  cost_usd REAL NOT NULL, status INTEGER NOT NULL, cache TEXT NOT NULL DEFAULT 'bypass',
  saved_usd REAL NOT NULL DEFAULT 0, key_name TEXT NOT NULL DEFAULT '',
  tokens INTEGER NOT NULL DEFAULT 0, route TEXT NOT NULL DEFAULT '',
  degraded INTEGER NOT NULL DEFAULT 0, shadow INTEGER NOT NULL DEFAULT 0,
  model_usd REAL NOT NULL DEFAULT 0, overhead_usd REAL NOT NULL DEFAULT 0,
  tier_costs TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_key ON requests (key_name, ts);
CREATE TABLE IF NOT EXISTS payloads (
  ts REAL NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL, key_name TEXT NOT NULL,
  request TEXT NOT NULL, response TEXT NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payloads_expires ON payloads (expires);
CREATE TABLE IF NOT EXISTS batches (
  ts REAL NOT NULL, run_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
  size INTEGER NOT NULL, reason TEXT NOT NULL, busy_s REAL NOT NULL, cost_usd REAL NOT NULL,
  queue_ms_mean REAL NOT NULL, queue_ms_max REAL NOT NULL, failed INTEGER NOT NULL,
  padded_size INTEGER, padding_waste REAL
);
CREATE INDEX IF NOT EXISTS batches_ts ON batches (ts);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started REAL NOT NULL, stopped REAL, instance TEXT NOT NULL,
  price_usd_per_hour REAL NOT NULL, slots INTEGER NOT NULL, pid INTEGER NOT NULL,
  heartbeat REAL, ready REAL
);
"""


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


class SqliteLedger:
    """The embedded default ledger: one SQLite file, one writer thread.

    The run's row says when it started (``started``, before its models loaded), when it could
    answer (``ready``), that it is still alive (``heartbeat``) and when it stopped (``stopped``):
    a run killed without a word is billed to its last heartbeat, never to "now".
    """

    def __init__(
        self, path: Path, *, flush_interval_ms: float = 200.0, heartbeat_s: float = 2.0
    ) -> None:
        if flush_interval_ms <= 0 or heartbeat_s <= 0:
            raise ValueError("flush_interval_ms and heartbeat_s must be > 0")
        self.path = Path(path)
        self.flush_interval_s = flush_interval_ms / 1000
        self.heartbeat_s = heartbeat_s
        self.run_id = uuid.uuid4().hex[:12]
        self._queue: queue.SimpleQueue[tuple[str, tuple[object, ...]] | threading.Event] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False
        # This run's request rows up to this rowid have their overhead share; the last inserted.
        self._shared_up_to = self._last_rowid = 0

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
        now = time.time()
        started = now if started_at is None else started_at
        if started > now:
            raise ValueError(f"started_at {started} is after now ({now})")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(self.path)
        try:
            ensure_schema(db)
            db.execute(
                "INSERT INTO runs (run_id, started, stopped, instance, price_usd_per_hour, slots, "
                "pid, heartbeat, ready) VALUES (?, ?, NULL, ?, ?, ?, ?, ?, NULL)",
                (self.run_id, started, instance, price_usd_per_hour, slots, os.getpid(), now),
            )
            db.commit()
        finally:
            db.close()
        self._thread = threading.Thread(target=self._write_loop, name="frugal-ledger", daemon=True)
        self._thread.start()

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
             int(row.degraded), int(row.shadow), model_usd, row.overhead_usd, row.tier_costs),
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
            log.error("ledger %s: flush timed out after %.0f s", self.path, timeout_s)

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

    def _write_loop(self) -> None:
        db = connect(self.path)
        stop = False
        last_beat = time.monotonic()  # open() wrote the first heartbeat
        while not stop:
            # Wake on a timer (or a flush), never per row: a wake per put would make the hot
            # path and this thread trade the GIL on every request.
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            pending: dict[str, list[tuple[object, ...]]] = {}
            marks: list[tuple[int, float]] = []  # (requests rows queued before it, its share)
            waiters: list[threading.Event] = []
            while True:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(entry, threading.Event):
                    waiters.append(entry)
                elif entry[0] == "stop":
                    stop = True
                elif entry[0] == "overhead":  # after the rows queued before it: keep the order
                    share = cast(float, entry[1][0])
                    marks.append((len(pending.get("requests", ())), share))
                else:
                    pending.setdefault(entry[0], []).append(entry[1])
            # The heartbeat rides on this thread: it wakes every flush interval anyway, so a beat
            # needs no thread of its own, only an UPDATE when one is due. Every commit of rows
            # carries one too (same transaction, no extra write), so the heartbeat is never older
            # than a committed row and a killed run's bill covers everything it recorded.
            beat = time.monotonic()
            if pending or marks or beat - last_beat >= self.heartbeat_s:
                pending.setdefault("runs_heartbeat", []).append((time.time(), self.run_id))
                last_beat = beat
            if pending:  # marks come with a heartbeat, so a lone marker is committed too
                self._commit(db, pending, marks)
            for waiter in waiters:
                waiter.set()
        db.close()

    def _insert_requests(
        self,
        db: sqlite3.Connection,
        rows: list[tuple[object, ...]],
        marks: Sequence[tuple[int, float]],
    ) -> tuple[int, int]:
        """Insert the rows in queue order, applying each cost interval's overhead where its
        marker stood. Returns (the last rowid whose share is settled, the last rowid inserted)."""
        shared_up_to, last = self._shared_up_to, self._last_rowid
        start = 0
        for upto, share in marks:
            if upto > start:
                _insert_many(db, "requests", rows[start:upto])
                last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                start = upto
            db.execute(_ADD_OVERHEAD, (share, share, shared_up_to, self.run_id))
            shared_up_to = last
        if start < len(rows):
            _insert_many(db, "requests", rows[start:])
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        return shared_up_to, last

    def _commit(
        self,
        db: sqlite3.Connection,
        pending: dict[str, list[tuple[object, ...]]],
        marks: Sequence[tuple[int, float]] = (),
    ) -> None:
        for attempt in range(50):
            try:
                with db:
                    settled = self._insert_requests(db, pending.get("requests", []), marks)
                    for table, rows in pending.items():
                        if table in _RUN_UPDATES:
                            db.executemany(_RUN_UPDATES[table], rows)
                        elif table != "requests":
                            _insert_many(db, table, rows)
                self._shared_up_to, self._last_rowid = settled
                return
            except sqlite3.OperationalError as exc:  # locked by another worker process: retry
                if attempt == 49:
                    log.error("ledger %s: dropping %d rows: %s", self.path, len(pending), exc)
                    return
                time.sleep(0.05)


# What the writer stamps on its run's row: (time, run_id) each.
# The rows of this run after a rowid (its own, inserted since the last cost interval closed) gain
# their share of the server's work; shadow copies answered no one and take none.
_ADD_OVERHEAD = (
    "UPDATE requests SET overhead_usd = ?, cost_usd = model_usd + ? "
    "WHERE rowid > ? AND run_id = ? AND shadow = 0"
)

_RUN_UPDATES = {
    "runs_stop": "UPDATE runs SET stopped = ? WHERE run_id = ?",
    "runs_ready": "UPDATE runs SET ready = COALESCE(ready, ?) WHERE run_id = ?",
    "runs_heartbeat": "UPDATE runs SET heartbeat = MAX(COALESCE(heartbeat, 0), ?) WHERE run_id = ?",
}


_ROWS_PER_INSERT = 500  # x 23 columns stays under SQLite's 32,766 bound parameters


def _insert_many(db: sqlite3.Connection, table: str, rows: list[tuple[object, ...]]) -> None:
    """Multi-row INSERTs: executemany steps once a row, releasing and retaking the GIL each time,
    which made this thread and the event loop trade the GIL thousands of times a second."""
    row_marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    for i in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[i : i + _ROWS_PER_INSERT]
        values = ", ".join([row_marks] * len(chunk))
        db.execute(f"INSERT INTO {table} VALUES {values}", [v for row in chunk for v in row])


# Columns added after a ledger file may have been created: (table, column, declaration).
_ADDED_COLUMNS = (
    ("requests", "saved_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "key_name", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "route", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "degraded", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "shadow", "INTEGER NOT NULL DEFAULT 0"),
    # Older rows read model_usd = overhead_usd = 0; reports read that as "all model share"
    # (report.py), so rows an older frugal still writes into a migrated file read right too.
    ("requests", "model_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "overhead_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "tier_costs", "TEXT NOT NULL DEFAULT ''"),
    ("runs", "heartbeat", "REAL"),  # NULL on older runs: billed to their last request
    ("runs", "ready", "REAL"),
)
# Statements run right after a column is added, where its default would misread older rows.
_BACKFILL = {
    # An older run's `started` was stamped after its models loaded: its start-up is unknown,
    # so 0 (ready at start), not its whole life (NULL: never ready).
    ("runs", "ready"): "UPDATE runs SET ready = started",
}


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the tables, and add columns that older ledger files lack (their rows read 0)."""
    have: dict[str, set[str]] = {}
    for table, column, declaration in _ADDED_COLUMNS:  # before the script: it indexes them
        if table not in have:
            have[table] = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if have[table] and column not in have[table]:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if (table, column) in _BACKFILL:
                db.execute(_BACKFILL[table, column])
    db.commit()
    db.executescript(SCHEMA)
    db.commit()


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that waits for other frugal worker processes' writes."""
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        db.close()  # e.g. "file is not a database": the caller reports it, nothing stays open
        raise
    return db


__all__ = [
    "BatchRow",
    "Ledger",
    "LedgerRow",
    "PayloadRow",
    "SqliteLedger",
    "connect",
    "ensure_schema",
]
