"""Cascades: each item tries the cheapest tier first and stops at the first tier that accepts it.

Items of one request may stop at different tiers; the answers come back in the request's order.
An item costs the sum of the tiers it went through. An item that a tier fails on (the model
raised, after bisection) goes on to the next tier like a rejected one, so a cascade is also a
fallback; the last tier's answer or error is final. A deadline that passed is final at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from frugal.errors import DeadlineExceeded
from frugal.routing.base import CallModel, RoutedResult, RouteRequest
from frugal.routing.gates import Gate
from frugal.types import ItemOutcome, Spend

# (endpoint, model, accepted, escalated, failed): the escalation rate per tier, for metrics.
TierObserver = Callable[[str, str, int, int, int], None]


class CascadeRouter:
    def __init__(
        self, tiers: Sequence[tuple[str, Gate | None]], *, observe: TierObserver | None = None
    ) -> None:
        if len(tiers) < 2 or tiers[-1][1] is not None:
            raise ValueError("a cascade has at least two tiers and the last has no gate")
        self.tiers = list(tiers)
        self.models: tuple[str, ...] = tuple(model for model, _ in tiers)
        self._observe = observe

    async def route(self, request: RouteRequest, call: CallModel) -> RoutedResult:
        n = len(request.items)
        final: list[ItemOutcome | None] = [None] * n
        spent: list[tuple[Spend, ...]] = [()] * n  # what earlier tiers cost each item, per tier
        pending = list(range(n))
        path: list[str] = []
        for model, gate in self.tiers:
            if not pending:
                break
            items = [request.items[i] for i in pending]
            outcomes = await call(model, items, request.deadline)
            keep = self._kept(gate, items, outcomes)
            accepted = escalated = failed = 0
            still: list[int] = []
            for i, outcome, kept in zip(pending, outcomes, keep, strict=True):
                outcome = dataclasses.replace(outcome, earlier=spent[i])
                if kept or gate is None or isinstance(outcome.error, DeadlineExceeded):
                    final[i] = outcome
                    accepted += outcome.error is None
                    failed += outcome.error is not None
                else:
                    spent[i] = outcome.spend
                    escalated += 1
                    still.append(i)
            path.append(f"{model}*{accepted + failed}")
            if self._observe is not None:
                self._observe(request.endpoint, model, accepted, escalated, failed)
            pending = still
        assert all(o is not None for o in final)
        return RoutedResult([o for o in final if o is not None], path)

    def replace_gate(self, model: str, gate: Gate) -> None:
        """A tier's gate at a new threshold (the drift check tightening it, drift.py); requests
        already past that tier keep the verdict they got."""
        self.tiers = [(m, gate if m == model else g) for m, g in self.tiers]

    @staticmethod
    def _kept(gate: Gate | None, items: list[object], outcomes: list[ItemOutcome]) -> list[bool]:
        """Which answers this tier keeps: an error is never kept (the next tier may answer)."""
        if gate is None:
            return [True] * len(outcomes)
        ok = [j for j, o in enumerate(outcomes) if o.error is None and o.prediction is not None]
        keep = [False] * len(outcomes)
        if ok:
            predictions = [outcomes[j].prediction for j in ok]
            verdicts = gate.accepts([items[j] for j in ok], predictions)  # type: ignore[arg-type]
            for j, verdict in zip(ok, verdicts, strict=True):
                keep[j] = verdict
        return keep


__all__ = ["CascadeRouter", "TierObserver"]
