"""One ledger for every Ray replica: a single writer actor owns the SQLite file, and each
replica books its rows through an ``ActorLedger`` that sends them in batches.

Why one writer: SQLite takes one writer at a time, and the file lives on one node; an actor
that owns it (the embedded ``SqliteLedger`` and its writer thread) keeps every row exactly
once, in one run, so a report's totals are the answers' costs. Replicas never write per
request synchronously: rows wait in the replica until the next send (one per cost interval,
or ``flush_interval_ms`` for batch rows), which is one actor call for many rows.

The cost interval's overhead share is applied in the replica, not by the writer's usual
marker: the writer receives several replicas' rows interleaved, so "rows since the last
marker" would mix them. A replica holds its interval's rows until its ``add_overhead`` and
sends them with their share filled in.

On a cluster of several nodes, or when the ledger must outlive the Ray cluster, each replica
opens the shared PostgreSQL ledger (``ledger.url``) itself instead: ``ActorLedger`` is only
the one-node store (docs/ray.md, "Which ledger").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from frugal.accounting import BatchRow, LedgerRow, SqliteLedger
from frugal.accounting.ledger import PayloadRow

log = logging.getLogger("frugal.scale.ledger")


class LedgerWriter:
    """The body of the writer actor (``ray.remote(LedgerWriter)``): owns the SQLite ledger.

    Its methods run one at a time in the actor, in the order each caller sent them.
    """

    def __init__(
        self,
        path: str,
        *,
        flush_interval_ms: float,
        heartbeat_s: float,
        instance: str,
        price_usd_per_hour: float,
        slots: float,
        started_at: float,
    ) -> None:
        self._ledger = SqliteLedger(
            Path(path), flush_interval_ms=flush_interval_ms, heartbeat_s=heartbeat_s
        )
        self._ledger.open(instance=instance, price_usd_per_hour=price_usd_per_hour, slots=slots,
                          started_at=started_at)  # fmt: skip
        self.requests = 0

    def write(
        self, requests: list[LedgerRow], batches: list[BatchRow], payloads: list[PayloadRow]
    ) -> int:
        """Queues the rows for the writer thread; returns the request rows taken so far."""
        for row in requests:
            self._ledger.record(row)
        for batch in batches:
            self._ledger.record_batch(batch)
        for payload in payloads:
            self._ledger.record_payload(payload)
        self.requests += len(requests)
        return self.requests

    def mark_ready(self) -> None:
        self._ledger.mark_ready()

    def flush(self) -> int:
        """Returns once every row written so far is committed; the request rows taken."""
        self._ledger.flush_sync()
        return self.requests

    def healthy(self) -> bool:
        return self._ledger.healthy

    def close(self) -> None:
        """Stamps the run's end (idle time is billed up to here) and stops the writer."""
        self._ledger.close()


class ActorLedger:
    """A replica's side of the writer actor: the ``Ledger`` the replica's recorder books in.

    ``writer`` is the actor's handle; ``send_interval_s`` bounds how long a batch row (or a
    shadow row, which takes no overhead share) waits before it is sent.
    """

    def __init__(self, writer: Any, *, send_interval_s: float) -> None:
        self._writer = writer
        self._send_interval_s = send_interval_s
        self._interval: list[LedgerRow] = []  # waiting for this cost interval's overhead share
        self._requests: list[LedgerRow] = []  # ready to send
        self._batches: list[BatchRow] = []
        self._payloads: list[PayloadRow] = []
        self._sending: set[asyncio.Future[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._failed = False
        self.sent = 0  # request rows sent to the writer

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
        ref = self._writer.write.remote(requests, batches, payloads)
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


__all__ = ["ActorLedger", "LedgerWriter"]
