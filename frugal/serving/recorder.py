"""The one place a finished request is booked: its ledger row, its metrics, its budget charge.

Every way out of the serving path (an answer, a refusal after admission, an LLM call, a
stream's end, a shadow copy) hands the recorder one ``Finished``; nothing else writes request
rows or charges budgets, so what a request costs is decided in one spot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from frugal.accounting import BatchRow, Ledger, LedgerRow, Pricer
from frugal.accounting.budgets import BudgetBook
from frugal.observability import ServingMetrics
from frugal.types import BatchStats, ItemOutcome


@dataclass(frozen=True, slots=True)
class Finished:
    """A request past admission, answered with any status: what the ledger and metrics need.

    ``upstream_usd`` is an LLM upstream's token bill (those requests have no outcomes);
    local models' dollars come from the outcomes' batches.
    """

    endpoint: str  # the ledger's endpoint column: an endpoint, ``v2:<model>``, ``llm:<model>``
    model: str  # name:version that answered (a cascade: the last tier), or "-"
    request_id: str
    received: float  # monotonic
    status: int
    outcomes: Sequence[ItemOutcome] = ()
    upstream_usd: float = 0.0
    tokens: int | None = None  # None: the outcomes' own count
    key: str = ""  # the API key's name; its budgets are charged
    cache: str = "bypass"
    saved_usd: float = 0.0
    route: str = ""
    degraded: bool = False
    shadow: bool = False  # shadow spend: in the ledger, not in request metrics or budgets


class Recorder:
    """Books requests and batches; called on the event loop, never blocks it."""

    def __init__(
        self,
        pricer: Pricer,
        ledger: Ledger | None,
        metrics: ServingMetrics,
        *,
        budgets: BudgetBook | None = None,
    ) -> None:
        self.pricer = pricer
        self.ledger = ledger
        self.metrics = metrics
        self.budgets = budgets
        self._mean_item_cost: dict[str, float] = {}

    def finish(self, done: Finished) -> float:
        """Books ``done``; returns its cost in dollars (what ``x-frugal-cost-usd`` says)."""
        latency_s = time.monotonic() - done.received
        cost_usd = math.fsum(o.cost_usd for o in done.outcomes) + done.upstream_usd
        tokens = tokens_of(done.outcomes) if done.tokens is None else done.tokens
        if not done.shadow:
            self.metrics.observe_request(done.endpoint, done.model, done.status, latency_s,
                                         cost_usd)  # fmt: skip
            if self.budgets is not None and done.key and (cost_usd or tokens):
                self.budgets.add(done.key, cost_usd, tokens)
        if self.ledger is not None:
            self.ledger.record(_row(done, latency_s, cost_usd, tokens))
        return cost_usd

    def mean_item_cost(self, model: str) -> float:
        """The running mean cost of one item of that model version: what a cache hit saves."""
        return self._mean_item_cost.get(model, 0.0)

    def batch(self, stats: BatchStats) -> None:
        """A batch ran: its metrics, its ledger row, and the running mean item cost."""
        self.metrics.observe_batch(stats)
        if stats.size and not stats.failed:
            mean = self._mean_item_cost.get(stats.model)
            cost = stats.cost_per_item_usd
            self._mean_item_cost[stats.model] = cost if mean is None else 0.9 * mean + 0.1 * cost
        if self.ledger is None:
            return
        name, _, version = stats.model.partition(":")
        queue_ms = [1000 * q for q in stats.queue_s]
        self.ledger.record_batch(
            BatchRow(
                ts=stats.started_at,
                model=name,
                version=version,
                size=stats.size,
                reason=stats.reason,
                busy_s=stats.busy_s,
                cost_usd=stats.cost_per_item_usd * stats.size,
                queue_ms_mean=sum(queue_ms) / len(queue_ms),
                queue_ms_max=max(queue_ms),
                failed=stats.failed,
                padded_size=stats.padded_size,
                padding_waste=stats.padding_waste,
            )
        )


def tokens_of(outcomes: Sequence[ItemOutcome]) -> int:
    return sum(o.prediction.tokens for o in outcomes if o.prediction is not None)


def _row(done: Finished, latency_s: float, cost_usd: float, tokens: int) -> LedgerRow:
    batches = [o.batch for o in done.outcomes if o.batch is not None]
    name, _, version = done.model.partition(":")
    return LedgerRow(
        ts=time.time(),
        request_id=done.request_id,
        endpoint=done.endpoint,
        model=name or "-",
        version=version or "-",
        items=len(done.outcomes),
        batch_size=sum(b.size for b in batches) / len(batches) if batches else 0.0,
        queue_ms=1000 * max((o.queue_s for o in done.outcomes), default=0.0),
        compute_ms=1000 * max((b.busy_s for b in batches), default=0.0),
        latency_ms=1000 * latency_s,
        cost_usd=cost_usd,
        status=done.status,
        cache=done.cache,
        saved_usd=done.saved_usd,
        key=done.key,
        tokens=tokens,
        route=done.route,
        degraded=done.degraded,
        shadow=done.shadow,
    )


__all__ = ["Finished", "Recorder", "tokens_of"]
