"""The one place a finished request is booked: its ledger row, its metrics, its budget charge.

Every way out of the serving path (an answer, a refusal after admission, an LLM call, a
stream's end, a shadow copy) hands the recorder one ``Finished``; nothing else writes request
rows or charges budgets, so what a request costs is decided in one spot.

A request's cost has two parts (docs/cost-model.md). The model's share is known when it
finishes: its items' shares of their batches (or an upstream's token bill). The server's own
work is measured per interval (accounting/overhead.py) and shared equally by the requests that
finished in it: a row reaches the ledger at once with its model share, and when its interval
closes (``interval_s``, 1 s by default) the ledger adds its share of the work to it. The
answer's ``x-frugal-cost-usd`` cannot wait: it says the model's share plus the overhead per
request of the interval before.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from frugal.accounting import BatchRow, Ledger, LedgerRow, Pricer
from frugal.accounting.budgets import BudgetBook
from frugal.accounting.overhead import OverheadMeter
from frugal.accounting.tier_costs import format_tier_costs
from frugal.observability import RequestLog, ServingMetrics, batch_id
from frugal.types import BatchStats, ItemOutcome

DEFAULT_INTERVAL_S = 1.0


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
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
    # An LLM cascade's upstream tiers: (model, usd) per call, part of ``upstream_usd``.
    upstream_tiers: tuple[tuple[str, float], ...] = ()
    tier: str = ""  # the caller's tier (its key's, or x-frugal-tier without auth)


class Recorder:
    """Books requests and batches; called on the event loop, never blocks it."""

    def __init__(
        self,
        pricer: Pricer,
        ledger: Ledger | None,
        metrics: ServingMetrics,
        *,
        budgets: BudgetBook | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        meter: OverheadMeter | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.pricer = pricer
        self.ledger = ledger
        self.metrics = metrics
        self.budgets = budgets
        self.interval_s = interval_s
        self.meter = meter if meter is not None else OverheadMeter(pricer)
        self.request_log = request_log  # None: no per-request log line
        self._mean_item_cost: dict[str, float] = {}
        # How many requests (not shadows) each (endpoint, model) answered in this interval:
        # what its overhead is shared by.
        self._answered: dict[tuple[str, str], int] = {}
        self._interval_model_usd = 0.0  # batches priced since the interval opened
        self.overhead_per_request_usd = 0.0  # the last closed interval's share: headers use it

    @property
    def healthy(self) -> bool:
        """The ledger (when there is one) is writing: readiness requires it, or answers would
        go out with no row (docs/config.md, "Ledger health")."""
        return self.ledger is None or self.ledger.healthy

    # ---- requests ---------------------------------------------------------------------------

    def finish(self, done: Finished) -> float:
        """Books ``done``; returns what ``x-frugal-cost-usd`` says: its model share plus the
        overhead per request of the last interval (its row gets this interval's, measured)."""
        latency_s = time.monotonic() - done.received
        outcomes = done.outcomes
        only = outcomes[0] if len(outcomes) == 1 and not done.upstream_tiers else None
        if only is not None and not only.earlier:  # the common request: no generic walks
            batch = only.batch
            model_usd = only.own_cost_usd + done.upstream_usd
            tokens = done.tokens
            if tokens is None:
                tokens = only.prediction.tokens if only.prediction is not None else 0
            by_tier = "" if batch is None or batch.model == done.model else tier_costs(done)
        else:
            model_usd = cost_of(outcomes) + done.upstream_usd
            tokens = tokens_of(outcomes) if done.tokens is None else done.tokens
            by_tier = tier_costs(done)
        if self.ledger is not None:  # its cost is its model share until its interval closes
            self.ledger.record(_row(done, latency_s, model_usd, tokens, by_tier))
        if done.shadow:
            return model_usd
        key = (done.endpoint, done.model)
        self._answered[key] = self._answered.get(key, 0) + 1
        cost_usd = model_usd + self.overhead_per_request_usd
        self.metrics.observe_request(done.endpoint, done.model, done.status, latency_s, model_usd)
        if self.budgets is not None and done.key and (cost_usd or tokens):
            self.budgets.add(done.key, cost_usd, tokens)
        if self.request_log is not None and (level := self.request_log.wanted()):
            self.request_log.write(
                level, request_id=done.request_id, endpoint=done.endpoint, model=done.model,
                cache=done.cache, cost_usd=cost_usd, status=done.status, latency_s=latency_s,
                batch_ids=(batch_id(o.batch.model, o.batch.started_at)
                           for o in done.outcomes if o.batch is not None), key=done.key,
            )  # fmt: skip
        return cost_usd

    def close_interval(self) -> None:
        """Measures the server's CPU since the last call and shares its price among the
        requests that finished since (their rows gain it in the ledger)."""
        answered, self._answered = self._answered, {}
        model_usd, self._interval_model_usd = self._interval_model_usd, 0.0
        overhead_usd = self.meter.close_interval(model_usd)
        requests = sum(answered.values())
        # No request finished (an idle server's health checks and scrapes): that CPU stays idle.
        share = overhead_usd / requests if requests else 0.0
        if requests:
            self.overhead_per_request_usd = share
        self.metrics.observe_overhead(answered, share, cpu_s=self.meter.last_cpu_s)
        if self.ledger is not None:
            self.ledger.add_overhead(share)

    async def run(self) -> None:
        """Closes an interval every ``interval_s`` until cancelled (the app's lifespan)."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.close_interval()

    async def flush(self) -> None:
        """Closes the open interval and waits for the ledger: on shutdown nothing is lost."""
        self.close_interval()
        if self.ledger is not None:
            await self.ledger.flush()

    # ---- batches ----------------------------------------------------------------------------

    def mean_item_cost(self, model: str) -> float:
        """The running mean cost of one item of that model version: what a cache hit saves."""
        return self._mean_item_cost.get(model, 0.0)

    def observe_item_cost(self, stats: BatchStats) -> None:
        """Folds a batch's item cost into the running mean (``batch`` does, for the batches of
        this process; a process whose models run elsewhere calls it with theirs)."""
        if stats.size and not stats.failed:
            mean = self._mean_item_cost.get(stats.model)
            cost = stats.cost_per_item_usd
            self._mean_item_cost[stats.model] = cost if mean is None else 0.9 * mean + 0.1 * cost

    def batch(self, stats: BatchStats) -> None:
        """A batch ran: its metrics, its ledger row, and the running mean item cost."""
        self.metrics.observe_batch(stats)
        batch_usd = stats.cost_per_item_usd * stats.size
        self._interval_model_usd += batch_usd
        self.observe_item_cost(stats)
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
                cost_usd=batch_usd,
                queue_ms_mean=sum(queue_ms) / len(queue_ms),
                queue_ms_max=max(queue_ms),
                failed=stats.failed,
                padded_size=stats.padded_size,
                padding_waste=stats.padding_waste,
            )
        )


def cost_of(outcomes: Sequence[ItemOutcome]) -> float:
    """The model dollars of a request's items (each its batch share and earlier tiers')."""
    if len(outcomes) == 1 and not outcomes[0].earlier:  # the common request: no fsum walk
        return outcomes[0].own_cost_usd
    return math.fsum(o.cost_usd for o in outcomes)


def tokens_of(outcomes: Sequence[ItemOutcome]) -> int:
    return sum(o.prediction.tokens for o in outcomes if o.prediction is not None)


def tier_costs(done: Finished) -> str:
    """Each model version's share of the request's model dollars, when more than the row's
    own model ran its items (a cascade's tiers, a split's versions, an LLM cascade's tiers)."""
    by_model: dict[str, float] = {}
    for outcome in done.outcomes:
        for model, usd in outcome.spend:
            by_model[model] = by_model.get(model, 0.0) + usd
    for model, usd in done.upstream_tiers:
        by_model[model] = by_model.get(model, 0.0) + usd
    if not by_model or list(by_model) == [done.model]:
        return ""
    return format_tier_costs(by_model.items())


def _row(
    done: Finished, latency_s: float, model_usd: float, tokens: int, by_tier: str
) -> LedgerRow:
    """The request's row so far: its cost is its model share until its interval closes."""
    outcomes = done.outcomes
    if len(outcomes) == 1:  # the common request, without the generic walks below
        only = outcomes[0]
        batch = only.batch
        batch_size = float(batch.size) if batch is not None else 0.0
        queue_ms = 1000 * only.queue_s
        compute_ms = 1000 * batch.busy_s if batch is not None else 0.0
    else:
        batches = [o.batch for o in outcomes if o.batch is not None]
        batch_size = sum(b.size for b in batches) / len(batches) if batches else 0.0
        queue_ms = 1000 * max((o.queue_s for o in outcomes), default=0.0)
        compute_ms = 1000 * max((b.busy_s for b in batches), default=0.0)
    name, _, version = done.model.partition(":")
    return LedgerRow(
        ts=time.time(),
        request_id=done.request_id,
        endpoint=done.endpoint,
        model=name or "-",
        version=version or "-",
        items=len(outcomes),
        batch_size=batch_size,
        queue_ms=queue_ms,
        compute_ms=compute_ms,
        latency_ms=1000 * latency_s,
        cost_usd=model_usd,
        status=done.status,
        cache=done.cache,
        saved_usd=done.saved_usd,
        key=done.key,
        tokens=tokens,
        route=done.route,
        degraded=done.degraded,
        shadow=done.shadow,
        model_usd=model_usd,
        tier_costs=by_tier,
        tier=done.tier,
    )


__all__ = ["DEFAULT_INTERVAL_S", "Finished", "Recorder", "cost_of", "tier_costs", "tokens_of"]
