"""Prometheus metrics of the serving path, in a registry owned by one app (no globals).

Labels are bounded: endpoint, model version, status, release reason. Never request or user ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from frugal.observability.buckets import BATCH_BUCKETS, LATENCY_BUCKETS
from frugal.observability.ledger_metrics import LedgerCollector, LedgerState
from frugal.observability.loop_metrics import (
    CounterChild,
    HistogramChild,
    LoopCounter,
    LoopHistogram,
)
from frugal.observability.process_metrics import watch_gpus
from frugal.observability.route_metrics import RouteMetrics
from frugal.observability.token_metrics import TokenMetrics
from frugal.types import BatchStats


class ServingMetrics:
    def __init__(self, *, slots: float, price_usd_per_hour: float) -> None:
        self.registry = CollectorRegistry()
        # The OS's view of this process (process_cpu_seconds_total, memory): the reference
        # that the server's allocated dollars can be checked against.
        ProcessCollector(registry=self.registry)
        self.started = time.monotonic()
        self.slots = slots
        self.price_usd_per_hour = price_usd_per_hour
        self._busy_s_total = 0.0
        r = self.registry
        # The series every request and item updates: lock-free, event loop only
        # (loop_metrics.py says why); the rest stay on prometheus_client.
        self.requests = LoopCounter(
            "frugal_requests", "Requests answered.", ["endpoint", "model", "status"], r
        )
        self.latency = LoopHistogram(
            "frugal_request_latency_seconds",
            "Time from request read to answer.",
            ["endpoint"],
            LATENCY_BUCKETS,
            r,
        )
        self.cost = LoopCounter(
            "frugal_cost_usd", "Allocated cost of answered requests.", ["endpoint", "model"], r
        )
        self.overhead = Counter(
            "frugal_overhead_usd",
            "The server's own work (HTTP, JSON, admission, ledger, metrics) priced from its "
            "measured CPU; part of frugal_cost_usd.",
            ["endpoint", "model"],
            registry=r,
        )
        self.server_cpu = Counter(
            "frugal_server_cpu_seconds",
            "CPU seconds of the server's own threads (all but the model's slot threads).",
            registry=r,
        )
        self._overhead_usd_total = 0.0
        self.queue = LoopHistogram(
            "frugal_queue_seconds",
            "Time an item waited before its batch ran.",
            ["model"],
            LATENCY_BUCKETS,
            r,
        )
        self.batch_size = LoopHistogram(
            "frugal_batch_size", "Items per predict_batch call.", ["model", "reason"],
            BATCH_BUCKETS, r,
        )  # fmt: skip
        self.busy = LoopCounter(
            "frugal_busy_seconds", "Seconds a slot spent in predict_batch.", ["model"], r
        )
        self.item_errors = Counter(
            "frugal_item_errors", "Items the model failed on.", ["model"], registry=r
        )
        self._children: dict[
            tuple[str, str, int], tuple[CounterChild, HistogramChild, CounterChild]
        ] = {}
        self.cache_lookups = Counter(
            "frugal_cache_lookups", "Items looked up in an endpoint's cache.",
            ["endpoint", "scope", "result"], registry=r,
        )  # fmt: skip
        self.cache_saved = Counter(
            "frugal_cache_saved_usd", "What cache hits would have cost the model.", ["endpoint"],
            registry=r,
        )  # fmt: skip
        self.cascade = Counter(
            "frugal_cascade_items", "Items a cascade tier accepted, escalated or failed on.",
            ["endpoint", "model", "result"], registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "frugal_refused", "Requests refused at admission, before any work or cost.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.routes = RouteMetrics(r)
        self.tokens = TokenMetrics(r)  # LLM tokens by endpoint and key
        self.gpus = watch_gpus(r)  # GPU memory and utilization where NVML starts
        self.padding = Histogram(
            "frugal_padding_waste_ratio",
            "Share of a sized batch that was padding.",
            ["model"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
            registry=r,
        )

    def watch_server(self, gauges: Mapping[str, tuple[str, Callable[[], float]]]) -> None:
        """The server's own load, read when scraped: ``{name: (help, read)}`` (docs/serving.md
        #under-hostile-load lists them: open requests, bodies being read, connections, loop lag)."""
        for name, (help_text, read) in gauges.items():
            Gauge(name, help_text, registry=self.registry).set_function(read)

    def watch_batchers(self, state: Callable[[], Iterable[BatcherState]]) -> None:
        """Queue depths and fitted batch costs are read when scraped: no hot-path updates."""
        self.registry.register(_LiveCollector(state, self))

    def watch_ledger(self, state: Callable[[], LedgerState]) -> None:
        """The ledger's rows written, rejected, lost and held, and its health, read when
        scraped."""
        self.registry.register(LedgerCollector(state))

    def observe_request(
        self, endpoint: str, model: str, status: int, latency_s: float, cost_usd: float
    ) -> None:
        key = (endpoint, model, status)
        children = self._children.get(key)
        if children is None:  # resolve each series once, not a labels() lookup per request
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

    def observe_overhead(
        self, answered: Mapping[tuple[str, str], int], share_usd: float, *, cpu_s: float
    ) -> None:
        """An interval closed: each request it answered, counted by (endpoint, model), gets
        ``share_usd`` of the server's work."""
        self.server_cpu.inc(cpu_s)
        if not share_usd:
            return
        for (endpoint, model), count in answered.items():
            self.cost.labels(endpoint, model).inc(share_usd * count)
            self.overhead.labels(endpoint, model).inc(share_usd * count)
        self._overhead_usd_total += share_usd * sum(answered.values())

    def observe_tier(
        self, endpoint: str, model: str, accepted: int, escalated: int, failed: int
    ) -> None:
        """A cascade tier's verdicts on one request's items: escalated / (all) is its rate."""
        for result, count in (("accepted", accepted), ("escalated", escalated), ("failed", failed)):
            if count:
                self.cascade.labels(endpoint, model, result).inc(count)

    def observe_refusal(self, reason: str) -> None:
        """reason: unauthorized | forbidden | rate_limited | budget | headers_too_large."""
        self.refused.labels(reason).inc()

    def observe_cache(
        self, endpoint: str, scope: str, hits: int, misses: int, saved_usd: float
    ) -> None:
        if hits:
            self.cache_lookups.labels(endpoint, scope, "hit").inc(hits)
            self.cache_saved.labels(endpoint).inc(saved_usd)
        if misses:
            self.cache_lookups.labels(endpoint, scope, "miss").inc(misses)

    def watch_caches(self, stats: Callable[[], Iterable[CacheState]]) -> None:
        """Each endpoint cache's size and evictions, read when scraped."""
        self.registry.register(_CacheCollector(stats))

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


class CacheState(NamedTuple):
    endpoint: str
    entries: int
    bytes: int
    evictions: int
    errors: int  # a remote store's failed operations (the cache failed open)


class _CacheCollector(Collector):
    def __init__(self, stats: Callable[[], Iterable[CacheState]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        entries = GaugeMetricFamily(
            "frugal_cache_entries", "Entries in an endpoint's cache.", labels=["endpoint"]
        )
        size = GaugeMetricFamily(
            "frugal_cache_bytes", "Estimated bytes of an endpoint's cache.", labels=["endpoint"]
        )
        evictions = CounterMetricFamily(
            "frugal_cache_evictions", "Entries evicted to keep a cache in bounds.",
            labels=["endpoint"],
        )  # fmt: skip
        errors = CounterMetricFamily(
            "frugal_cache_store_errors", "Cache store operations that failed (served uncached).",
            labels=["endpoint"],
        )  # fmt: skip
        for state in self._stats():
            entries.add_metric([state.endpoint], state.entries)
            size.add_metric([state.endpoint], state.bytes)
            evictions.add_metric([state.endpoint], state.evictions)
            errors.add_metric([state.endpoint], state.errors)
        yield entries
        yield size
        yield evictions
        yield errors


class BatcherState(NamedTuple):
    model: str
    queue_depth: int
    batch_cost: tuple[float, float] | None  # (overhead_s, per_unit_s) fitted for sized models
    refused: Mapping[str, int] = {}  # submits the batcher refused with 503, by reason


class _LiveCollector(Collector):
    def __init__(
        self, state: Callable[[], Iterable[BatcherState]], metrics: ServingMetrics
    ) -> None:
        self._state = state
        self._metrics = metrics

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily(
            "frugal_queue_depth", "Items waiting per model.", labels=["model"]
        )
        overhead = GaugeMetricFamily(
            "frugal_batch_overhead_seconds",
            "Fitted busy seconds a batch costs whatever its size (sized models).",
            labels=["model"],
        )
        per_unit = GaugeMetricFamily(
            "frugal_batch_seconds_per_size_unit",
            "Fitted busy seconds per unit of padded size, e.g. per token (sized models).",
            labels=["model"],
        )
        refused = CounterMetricFamily(
            "frugal_queue_refused",
            "Calls a model version's queue refused with 503 before any work, by reason: "
            "queue_full (max_queue), expected_wait (it would answer past the deadline), "
            "draining.",
            labels=["model", "reason"],
        )
        for state in self._state():
            depth.add_metric([state.model], state.queue_depth)
            if state.batch_cost is not None:
                overhead.add_metric([state.model], state.batch_cost[0])
                per_unit.add_metric([state.model], state.batch_cost[1])
            for reason, count in state.refused.items():
                refused.add_metric([state.model, reason], count)
        yield depth
        yield overhead
        yield per_unit
        yield refused
        m = self._metrics
        wall = time.monotonic() - m.started
        billed = m.price_usd_per_hour / 3600 * wall
        model_usd = m.price_usd_per_hour / 3600 * m._busy_s_total / m.slots
        yield GaugeMetricFamily(
            "frugal_utilization",
            "Allocated (model busy slot time + the server's own measured work) / billed.",
            value=(model_usd + m._overhead_usd_total) / billed if billed > 0 else 0.0,
        )
        yield GaugeMetricFamily(
            "frugal_billed_usd", "Instance price x uptime of this process.", value=billed
        )
        allocated = GaugeMetricFamily(
            "frugal_allocated_usd",
            "What requests were allocated since start: the model's busy slot time and the "
            "server's own work; billed - both = idle.",
            labels=["part"],
        )
        allocated.add_metric(["model"], model_usd)
        allocated.add_metric(["overhead"], m._overhead_usd_total)
        yield allocated


__all__ = ["BatcherState", "CacheState", "ServingMetrics"]
