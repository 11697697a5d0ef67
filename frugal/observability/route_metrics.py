"""Metrics of model selection: rules that fired (degraded service), splits, rollbacks, shadows."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from frugal.observability.buckets import LATENCY_BUCKETS

# (endpoint, model version, weight) of every split, read when scraped.
SplitWeights = Callable[[], Iterable[tuple[str, str, float]]]
# A cascade's drift check, read when scraped: (items in its window, the drop's bound or None
# before any item, each gated tier's threshold now).
DriftReading = Callable[[], tuple[int, float | None, dict[str, float]]]


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

        self.drift_actions = Counter(
            "frugal_cascade_drift_actions", "Drift check verdicts past max_drop: tighten, "
            "alert, or at_limit (a tighten with every gate at its limit).",
            ["endpoint", "action"], registry=r,
        )  # fmt: skip
        self.drift_items = Counter(
            "frugal_cascade_drift_judged_items", "Served items the drift check judged, by "
            "label fed back or by the shadow check's agreement with the last tier.",
            ["endpoint", "by"], registry=r,
        )  # fmt: skip
        self.drift_disagreed = Counter(
            "frugal_cascade_drift_disagreed_items", "Shadow-checked items whose answer the "
            "last tier disagreed with.", ["endpoint"], registry=r,
        )  # fmt: skip
        self.drift_cost = Counter(
            "frugal_cascade_drift_cost_usd", "Allocated cost of the drift check's shadow calls "
            "(spent, never answered).", ["endpoint"], registry=r,
        )  # fmt: skip
        self._registry = r

    def observe_drift_action(self, endpoint: str, action: str) -> None:
        self.drift_actions.labels(endpoint, action).inc()

    def observe_drift_labels(self, endpoint: str, judged: int) -> None:
        if judged:
            self.drift_items.labels(endpoint, "label").inc(judged)

    def observe_drift_shadow(
        self, endpoint: str, *, judged: int, disagreed: int, cost_usd: float
    ) -> None:
        if judged:
            self.drift_items.labels(endpoint, "shadow").inc(judged)
        if disagreed:
            self.drift_disagreed.labels(endpoint).inc(disagreed)
        if cost_usd:
            self.drift_cost.labels(endpoint).inc(cost_usd)

    def watch_drift(self, endpoint: str, read: DriftReading) -> None:
        self._registry.register(_DriftCollector(endpoint, read))

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


class _DriftCollector:
    def __init__(self, endpoint: str, read: DriftReading) -> None:
        self._endpoint = endpoint
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        window, bound, thresholds = self._read()
        e = self._endpoint
        items = GaugeMetricFamily(
            "frugal_cascade_drift_window_items", "Judged items in the drift check's window.",
            labels=["endpoint"],
        )  # fmt: skip
        items.add_metric([e], window)
        yield items
        if bound is not None:
            gauge = GaugeMetricFamily(
                "frugal_cascade_drift_bound", "Upper bound on the cascade's accuracy drop "
                "against its last tier, over the window, at the configured confidence.",
                labels=["endpoint"],
            )  # fmt: skip
            gauge.add_metric([e], bound)
            yield gauge
        gate = GaugeMetricFamily(
            "frugal_cascade_gate_threshold", "A cascade tier's gate threshold now (the drift "
            "check may have tightened it).", labels=["endpoint", "model"],
        )  # fmt: skip
        for model, threshold in thresholds.items():
            gate.add_metric([e, model], threshold)
        yield gate


__all__ = ["DriftReading", "RouteMetrics", "SplitWeights"]
