"""Metrics of model selection: rules that fired (degraded service), splits, rollbacks, shadows."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from frugal.observability.buckets import LATENCY_BUCKETS

# (endpoint, model version, weight) of every split, read when scraped.
SplitWeights = Callable[[], Iterable[tuple[str, str, float]]]


class RouteMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.rules = Counter(
            "frugal_route_rule", "Requests a selection rule picked the models for.",
            ["endpoint", "rule", "degraded"], registry=r,
        )  # fmt: skip
        self.rollbacks = Counter(
            "frugal_rollbacks", "Canaries rolled back automatically.", ["endpoint", "model"],
            registry=r,
        )  # fmt: skip
        self.shadow_items = Counter(
            "frugal_shadow_items", "Shadowed items: agreed or disagreed with the answer sent, or "
            "failed in the shadow.", ["endpoint", "model", "result"], registry=r,
        )  # fmt: skip
        self.shadow_latency = Histogram(
            "frugal_shadow_latency_seconds", "Time a shadow version took on a request's copy.",
            ["endpoint", "model"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.shadow_cost = Counter(
            "frugal_shadow_cost_usd", "Allocated cost of shadow traffic (spent, never answered).",
            ["endpoint", "model"], registry=r,
        )  # fmt: skip

    def observe_rule(self, endpoint: str, rule: str, degraded: bool) -> None:
        self.rules.labels(endpoint, rule, "true" if degraded else "false").inc()

    def observe_rollback(self, endpoint: str, model: str) -> None:
        self.rollbacks.labels(endpoint, model).inc()

    def observe_shadow(
        self, endpoint: str, model: str, *, agreed: int, disagreed: int, failed: int,
        latency_s: float, cost_usd: float,
    ) -> None:  # fmt: skip
        for result, count in (("agreed", agreed), ("disagreed", disagreed), ("failed", failed)):
            if count:
                self.shadow_items.labels(endpoint, model, result).inc(count)
        self.shadow_latency.labels(endpoint, model).observe(latency_s)
        if cost_usd:
            self.shadow_cost.labels(endpoint, model).inc(cost_usd)

    def watch_splits(self, registry: CollectorRegistry, weights: SplitWeights) -> None:
        registry.register(_SplitCollector(weights))


class _SplitCollector:
    def __init__(self, weights: SplitWeights) -> None:
        self._weights = weights

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "frugal_split_weight", "Current weight of each version of a split.",
            labels=["endpoint", "model"],
        )  # fmt: skip
        for endpoint, model, weight in self._weights():
            gauge.add_metric([endpoint, model], weight)
        yield gauge


__all__ = ["RouteMetrics", "SplitWeights"]
