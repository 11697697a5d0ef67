"""The server's side of a cascade's drift check (routing/drift.py has the statistics): after
each answer it remembers the items for their labels and runs the shadow check on a sample, off
the answer's path; it takes labels from ``POST /v1/endpoints/{name}/feedback``; and it logs,
counts and audits every verdict.

The shadow check's calls go through the last tier's batcher like any request and are booked as
shadow spend (a ledger row with ``shadow`` set and no key): the operator chose to check, the
caller's budget does not pay.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from frugal.access import AuditLog
from frugal.observability import ServingMetrics
from frugal.routing.drift import DriftEvent, DriftMonitor, ShadowTicket
from frugal.serving.recorder import Recorder, cost_of
from frugal.serving.shadow_calls import CallModel, book_shadow, shadow_outcomes
from frugal.types import Item, ItemOutcome

log = logging.getLogger("frugal.drift")
AUDIT_ACTOR = "drift-check"


class DriftEvents:
    """Where the monitors' verdicts go: a log line, metrics and the audit log."""

    def __init__(self, metrics: ServingMetrics, audit: AuditLog | None) -> None:
        self.metrics = metrics
        self.audit = audit
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: DriftEvent) -> None:
        moved = ", ".join(f"{m} {o:g} -> {n:g}" for m, (o, n) in event.thresholds.items())
        log.warning(
            "drift check on %s: accuracy drop bound %.4f over %d judged items (%d harmed, "
            "%d helped): %s%s", event.endpoint, event.bound, event.judged, event.harmed,
            event.helped, event.action, f" ({moved})" if moved else "",
        )  # fmt: skip
        self.metrics.routes.observe_drift_action(event.endpoint, event.action)
        if self.audit is not None:
            action = f"cascade.drift.{event.action}"
            write = functools.partial(self.audit.append, AUDIT_ACTOR, action, event.endpoint,
                                      **event.detail())  # fmt: skip
            task = asyncio.get_running_loop().create_task(self._audit(write))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _audit(self, write: Callable[[], object]) -> None:
        try:
            await asyncio.to_thread(write)
        except Exception:  # the verdict is logged and counted already; say the audit failed
            log.exception("drift check: writing the audit entry failed")

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class DriftCheck:
    """One cascade endpoint's drift check, as the engine calls it."""

    def __init__(
        self, monitor: DriftMonitor, events: DriftEvents, recorder: Recorder, timeout_ms: float
    ) -> None:
        self.monitor = monitor
        self.events = events
        self.recorder = recorder
        self.metrics = metrics = recorder.metrics
        self.timeout_s = timeout_ms / 1000  # the last tier's, for the shadow check's calls
        self._tasks: set[asyncio.Task[None]] = set()
        metrics.routes.watch_drift(monitor.endpoint, self._reading)

    def _reading(self) -> tuple[int, float | None, dict[str, float]]:
        state = self.monitor.state()
        return state["window"], state["bound"], state["thresholds"]

    def after_answer(
        self, call: CallModel, items: Sequence[Item], outcomes: Sequence[ItemOutcome],
        request_id: str, key: str,
    ) -> None:  # fmt: skip
        """Remember the answers for their labels; start the shadow check on its sample."""
        ticket = self.monitor.served(request_id, key, outcomes)
        if ticket is None:
            return
        sample = [items[i] for i in ticket.indices]
        task = asyncio.get_running_loop().create_task(self._shadow(call, sample, ticket,
                                                                   request_id))  # fmt: skip
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self, call: CallModel, sample: list[Item], ticket: ShadowTicket, request_id: str
    ) -> None:
        monitor = self.monitor
        received = time.monotonic()
        last = await shadow_outcomes(call, monitor.last, sample, received + self.timeout_s,
                                     f"drift check on {monitor.endpoint}")  # fmt: skip
        if last is None:
            return
        disagreed = monitor.shadowed(ticket, last)
        self.metrics.routes.observe_drift_shadow(
            monitor.endpoint, judged=sum(o.prediction is not None for o in last),
            disagreed=disagreed, cost_usd=cost_of(last),
        )  # fmt: skip
        book_shadow(self.recorder, monitor.endpoint, monitor.last, request_id, received, last)

    def feedback(self, request_id: str, key: str, labels: Sequence[object]) -> dict[str, Any]:
        result = self.monitor.feedback(request_id, key, labels)
        self.metrics.routes.observe_drift_labels(self.monitor.endpoint, result["judged"])
        return result

    async def close(self) -> None:
        """Shadow checks already started finish and are booked (they have deadlines); audit
        entries already asked for are written."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.close()


__all__ = ["AUDIT_ACTOR", "DriftCheck", "DriftEvents"]
