"""One ledger for every Ray replica: a single writer actor owns the SQLite file, and each
replica books its rows through an ``ActorLedger`` that sends them in batches.

Why one writer: the file lives on one node, and SQLite wants its writers in one place; an
actor that owns it keeps every row exactly once, so a report's totals are the answers' costs.
Replicas never write per request synchronously: rows wait in the replica until the next send
(one per cost interval, or ``flush_interval_ms`` for batch rows): one actor call for many rows.

Each replica is a **run** of its own in the ledger, priced at its share of the instance (its
CPUs over the instance's vCPUs) from its start to its stop, as ``--workers`` processes are: so
each replica's cost enters the ledger, a replica that sat idle shows as idle (billed, not
allocated), autoscaled replicas are billed for the time they lived, and per-key budgets work
as with ``--workers``: each ingress replica counts its own spending at once and reads the
others' (other runs) from the ledger file. The actor holds one ``SqliteLedger`` per run, as
that many processes would (SQLite serializes their commits; WAL, a 10 s busy timeout).

The cost interval's overhead share is applied in the replica that measured it, before the
rows are sent, and the rows go to that replica's run.

On several nodes, or when the ledger must outlive the Ray cluster, each replica opens the
shared PostgreSQL ledger (``ledger.url``) itself instead: ``ActorLedger`` is the one-node store
(docs/ray.md, "Which ledger").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.accounting import BatchRow, LedgerRow, Pricer, SqliteLedger
from frugal.accounting.ledger import PayloadRow

log = logging.getLogger("frugal.scale.ledger")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A replica's run: who it is and what its share of the instance costs."""

    run_id: str
    instance: str
    price_usd_per_hour: float
    slots: float
    started_at: float  # unix seconds, before its model loaded: start-up is billed too

    @classmethod
    def new(cls, pricer: Pricer, started_at: float) -> RunInfo:
        return cls(uuid.uuid4().hex[:12], pricer.instance, pricer.price_usd_per_hour,
                   pricer.slots, started_at)  # fmt: skip


class LedgerWriter:
    """The body of the writer actor (``ray.remote(LedgerWriter)``): owns the SQLite ledger.

    Its methods run one at a time in the actor, in the order each caller sent them.
    """

    def __init__(self, path: str, *, flush_interval_ms: float, heartbeat_s: float) -> None:
        self.path = Path(path)
        self.flush_interval_ms = flush_interval_ms
        self.heartbeat_s = heartbeat_s
        self._runs: dict[str, SqliteLedger] = {}
        self._stopped: set[str] = set()
        self.requests = 0

    def _run(self, run: RunInfo) -> SqliteLedger:
        ledger = self._runs.get(run.run_id)
        if ledger is None:  # a replica's first word: its run starts (and it is ready)
            ledger = SqliteLedger(self.path, flush_interval_ms=self.flush_interval_ms,
                                  heartbeat_s=self.heartbeat_s)  # fmt: skip
            ledger.run_id = run.run_id
            ledger.open(instance=run.instance, price_usd_per_hour=run.price_usd_per_hour,
                        slots=run.slots, started_at=min(run.started_at, time.time()))  # fmt: skip
            ledger.mark_ready()
            self._runs[run.run_id] = ledger
        return ledger

    def write(
        self,
        run: RunInfo,
        requests: list[LedgerRow],
        batches: list[BatchRow],
        payloads: list[PayloadRow],
    ) -> int:
        """Queues the rows for the run's writer thread; returns the request rows taken."""
        ledger = self._run(run)
        for row in requests:
            ledger.record(row)
        for batch in batches:
            ledger.record_batch(batch)
        for payload in payloads:
            ledger.record_payload(payload)
        self.requests += len(requests)
        return self.requests

    def flush(self) -> int:
        """Returns once every row written so far is committed; the request rows taken."""
        for ledger in self._runs.values():
            ledger.flush_sync()
        return self.requests

    def stop_run(self, run_id: str) -> None:
        """The replica stopped: its rows are committed and its run's end stamped."""
        ledger = self._runs.get(run_id)
        if ledger is not None:
            ledger.close()
            self._stopped.add(run_id)

    def healthy(self) -> bool:
        return all(ledger.healthy for run_id, ledger in self._runs.items()
                   if run_id not in self._stopped)  # fmt: skip

    def close(self) -> None:
        """Stamps the end of every run still open (replicas that died without a word)."""
        for ledger in self._runs.values():
            ledger.close()


class ActorLedger:
    """A replica's side of the writer actor: the ``Ledger`` the replica's recorder books in.

    ``writer`` is the actor's handle; ``send_interval_s`` bounds how long a batch row (or a
    shadow row, which takes no overhead share) waits before it is sent.
    """

    def __init__(self, writer: Any, run: RunInfo, *, send_interval_s: float) -> None:
        self._writer = writer
        self.run = run
        self.run_id = run.run_id
        self._send_interval_s = send_interval_s
        self._interval: list[LedgerRow] = []  # waiting for this cost interval's overhead share
        self._requests: list[LedgerRow] = []  # ready to send
        self._batches: list[BatchRow] = []
        self._payloads: list[PayloadRow] = []
        self._sending: set[asyncio.Future[Any]] = set()
        self._opening: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._failed = False
        self.sent = 0  # request rows sent to the writer

    def open(self) -> None:
        """Starts the run now (a replica that never gets traffic is billed too); no wait."""
        self._opening = self._writer.write.remote(self.run, [], [], [])

    @property
    def healthy(self) -> bool:
        """False once a send to the writer failed (readiness goes with it)."""
        return not self._failed

    def record(self, row: LedgerRow) -> None:
        if row.shadow:  # a shadow copy takes no overhead share: it goes as it is
            self._requests.append(row)
            self._schedule()
        else:
            self._interval.append(row)

    def add_overhead(self, overhead_usd: float) -> None:
        """The interval closed: its rows gain their share (as SqliteLedger's marker does)."""
        for row in self._interval:
            model_usd = row.model_usd if row.model_usd or row.overhead_usd else row.cost_usd
            shared = dataclasses.replace(
                row, model_usd=model_usd, overhead_usd=overhead_usd,
                cost_usd=model_usd + overhead_usd,
            )  # fmt: skip
            self._requests.append(shared)
        self._interval = []
        self._send()

    def record_batch(self, row: BatchRow) -> None:
        self._batches.append(row)
        self._schedule()

    def record_payload(self, row: PayloadRow) -> None:
        self._payloads.append(row)
        self._schedule()

    async def flush(self) -> None:
        """Sends what waits (rows of an open interval go with no share) and returns once the
        writer has committed everything this replica sent."""
        if self._interval:
            self.add_overhead(0.0)
        self._send()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        try:
            await self._writer.flush.remote()
        except Exception:
            self._failed = True
            log.exception("ledger writer: flush failed")

    async def close(self) -> None:
        """The replica stops: everything sent, committed, and its run's end stamped."""
        await self.flush()
        try:
            await self._writer.stop_run.remote(self.run_id)
        except Exception:
            log.exception("ledger writer: stopping run %s failed", self.run_id)

    def _schedule(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._send_interval_s, self._send)

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._requests or self._batches or self._payloads):
            return
        requests, self._requests = self._requests, []
        batches, self._batches = self._batches, []
        payloads, self._payloads = self._payloads, []
        ref = self._writer.write.remote(self.run, requests, batches, payloads)
        sent = asyncio.ensure_future(_awaited(ref))
        self._sending.add(sent)
        sent.add_done_callback(self._sent)
        self.sent += len(requests)

    def _sent(self, future: asyncio.Future[Any]) -> None:
        self._sending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self._failed = True
            log.error("ledger writer: a send failed: %r", future.exception())


async def _awaited(ref: Any) -> Any:
    return await ref


__all__ = ["ActorLedger", "LedgerWriter", "RunInfo"]
