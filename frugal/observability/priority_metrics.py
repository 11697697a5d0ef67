"""Metrics of priority by caller tier (``server.priority``): who the queues refused and how long
each tier waited, per model version.

Read from the batchers when scraped, so the hot path only bumps plain counters. The ``tier``
label takes the configured tiers only (an unknown tier is counted as the lowest): bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from frugal.observability.buckets import LATENCY_BUCKETS


class TierQueueState(NamedTuple):
    """One model version's counts for one tier."""

    model: str
    tier: str
    refused: Mapping[str, int]  # submits refused with 503, by reason (queue_full, ...)
    wait_buckets: Sequence[int]  # items per LATENCY_BUCKETS bound, not cumulative; +Inf last
    wait_sum_s: float


class TierCollector(Collector):
    def __init__(self, state: Callable[[], Iterable[TierQueueState]]) -> None:
        self._state = state

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily]:
        refused = CounterMetricFamily(
            "frugal_tier_queue_refused",
            "Calls a model version's queue refused with 503 before any work, by caller tier "
            "and reason (server.priority sheds lower tiers first).",
            labels=["model", "tier", "reason"],
        )
        waits = HistogramMetricFamily(
            "frugal_tier_queue_seconds",
            "Time an item waited before its batch ran, by caller tier (server.priority).",
            labels=["model", "tier"],
        )
        bounds = [str(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
        for state in self._state():
            for reason, count in state.refused.items():
                refused.add_metric([state.model, state.tier, reason], count)
            cumulative = list(accumulate(state.wait_buckets))
            waits.add_metric(
                [state.model, state.tier], list(zip(bounds, cumulative, strict=True)),
                state.wait_sum_s,
            )  # fmt: skip
        yield refused
        yield waits


__all__ = ["TierCollector", "TierQueueState"]
