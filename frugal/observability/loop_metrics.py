"""Counters and histograms for the per-request and per-item series, without prometheus_client's
locks: what every answer updates.

Why by hand: prometheus_client's children take a lock on every ``inc`` and walk the buckets in
Python on every ``observe`` (about 1.7 us a request for the request series, 0.8 us an item for
the queue wait), which is thread safety these series do not need: the serving path updates them
on the event loop only, and ``/metrics`` renders them on that loop too. Here an update is a
float addition, or a ``bisect`` and two additions; ``collect`` turns the series into the same
families prometheus_client's ``Counter`` and ``Histogram`` expose (``_total``, ``_created``,
``_bucket``, ``_count``, ``_sum``, the same ``le`` labels), so scrapes, dashboards and alert
rules read them unchanged. Anything updated from other threads stays on prometheus_client.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

Child = TypeVar("Child")


class CounterChild:
    """One labelled counter; ``inc`` from the event loop only."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"counters only go up; got {amount}")
        self.value += amount


class HistogramChild:
    """One labelled histogram: per-bucket counts (not cumulative; ``collect`` sums them)."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: over every bound (+Inf)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: the first bound >= value
        self.sum += value


class _LoopFamily(Collector, Generic[Child]):
    """A family of labelled children updated on one thread, the event loop."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry,
        new_child: Callable[[], Child],
    ) -> None:  # fmt: skip
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labels)
        self._new_child = new_child
        self._children: dict[tuple[str, ...], Child] = {}
        registry.register(self)

    def labels(self, *values: str) -> Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child


class LoopCounter(_LoopFamily[CounterChild]):
    """A counter family (``name`` without ``_total``, as prometheus_client's ``Counter``)."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labels, registry, CounterChild)

    def describe(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value, created=child.created)
        yield family


class LoopHistogram(_LoopFamily[HistogramChild]):
    """A histogram family with ``buckets`` as upper bounds (``le``); +Inf is always there."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be increasing, got {buckets}")
        self.bounds = bounds
        self._les = [floatToGoString(b) for b in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labels, registry, lambda: HistogramChild(bounds))

    def describe(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            cumulative, running = [], 0
            for le, count in zip(self._les, list(child.counts), strict=True):
                running += count
                cumulative.append((le, float(running)))
            family.add_metric(values, cumulative, child.sum)
            family.samples.append(  # prometheus_client's Histogram exposes _created too
                family.samples[-1]._replace(
                    name=f"{self.name}_created", value=child.created, timestamp=None
                )
            )
        yield family


__all__ = ["CounterChild", "HistogramChild", "LoopCounter", "LoopHistogram"]
