"""Prometheus metrics of the serving path, in a registry owned by one app (no globals).

Labels are bounded: endpoint, model version, status, release reason. Never request or user ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from frugal.records import BatchStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    def __init__(self, *, slots: int, price_usd_per_hour: float) -> None:
        self.registry = CollectorRegistry()
        self.started = time.monotonic()
        self.slots = slots
        self.price_usd_per_hour = price_usd_per_hour
        self._busy_s_total = 0.0
        r = self.registry
        self.requests = Counter(
            "frugal_requests", "Requests answered.", ["endpoint", "model", "status"], registry=r
        )
        self.latency = Histogram(
            "frugal_request_latency_seconds",
            "Time from request read to answer.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "frugal_cost_usd",
            "Allocated cost of answered requests.",
            ["endpoint", "model"],
            registry=r,
        )
        self.queue = Histogram(
            "frugal_queue_seconds",
            "Time an item waited before its batch ran.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "frugal_batch_size",
            "Items per predict_batch call.",
            ["model", "reason"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.busy = Counter(
            "frugal_busy_seconds", "Seconds a slot spent in predict_batch.", ["model"], registry=r
        )
        self.item_errors = Counter(
            "frugal_item_errors", "Items the model failed on.", ["model"], registry=r
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self.padding = Histogram(
            "frugal_padding_waste_ratio",
            "Share of a sized batch that was padding.",
            ["model"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
            registry=r,
        )

    def watch_queues(self, depth: Callable[[], Iterable[tuple[str, int]]]) -> None:
        """Queue depths are read when scraped, so the hot path does no gauge updates."""
        self.registry.register(_QueueCollector(depth, self))

    def observe_request(
        self, endpoint: str, model: str, status: int, latency_s: float, cost_usd: float
    ) -> None:
        key = (endpoint, model, status)
        children = self._children.get(key)
        if children is None:  # .labels() looks up and locks each time: resolve once per series
            children = self._children[key] = (
                self.requests.labels(endpoint, model, str(status)),
                self.latency.labels(endpoint),
                self.cost.labels(endpoint, model),
            )
        requests, latency, cost = children
        requests.inc()
        latency.observe(latency_s)
        if cost_usd:
            cost.inc(cost_usd)

    def observe_batch(self, stats: BatchStats) -> None:
        self._busy_s_total += stats.busy_s
        self.busy.labels(stats.model).inc(stats.busy_s)
        self.batch_size.labels(stats.model, stats.reason).observe(stats.size)
        queue = self.queue.labels(stats.model)
        for waited in stats.queue_s:
            queue.observe(waited)
        if stats.failed:
            self.item_errors.labels(stats.model).inc(stats.failed)
        if stats.padding_waste is not None:
            self.padding.labels(stats.model).observe(stats.padding_waste)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QueueCollector(Collector):
    def __init__(
        self, depth: Callable[[], Iterable[tuple[str, int]]], metrics: ServingMetrics
    ) -> None:
        self._depth = depth
        self._metrics = metrics

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "frugal_queue_depth", "Items waiting per model.", labels=["model"]
        )
        for model, n in self._depth():
            depth.add_metric([model], n)
        yield depth
        m = self._metrics
        wall = time.monotonic() - m.started
        utilization = m._busy_s_total / (m.slots * wall) if wall > 0 else 0.0
        yield GaugeMetricFamily(
            "frugal_utilization", "Busy slot-seconds / (slots x uptime).", value=utilization
        )
        yield GaugeMetricFamily(
            "frugal_billed_usd",
            "Instance price x uptime of this process.",
            value=m.price_usd_per_hour / 3600 * wall,
        )


__all__ = ["ServingMetrics"]
