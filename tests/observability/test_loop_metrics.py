"""The lock-free request series expose exactly what prometheus_client's Counter and Histogram
would: scrapes, dashboards and alert rules cannot tell them apart."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import (  # untyped: read through a typed alias
    generate_latest as _openmetrics_latest,
)

from frugal.observability.buckets import BATCH_BUCKETS, LATENCY_BUCKETS
from frugal.observability.loop_metrics import LoopCounter, LoopHistogram


def openmetrics_latest(registry: CollectorRegistry) -> bytes:
    return bytes(_openmetrics_latest(registry))  # type: ignore[no-untyped-call]


def without_created(text: bytes) -> str:
    """Creation times differ between two objects made a moment apart; everything else may not."""
    return re.sub(r"_created(\{[^}]*\})? \S+", "_created T", text.decode())


values = st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False)
bounds = st.sampled_from([LATENCY_BUCKETS, BATCH_BUCKETS])


@given(
    observations=st.lists(st.tuples(st.sampled_from(["a", "b"]), values), max_size=40),
    buckets=bounds,
)
def test_a_histogram_exposes_what_prometheus_client_would(
    observations: list[tuple[str, float]], buckets: tuple[float, ...]
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("frugal_t_seconds", "T.", ["endpoint"], buckets=buckets, registry=theirs)
    loop = LoopHistogram("frugal_t_seconds", "T.", ["endpoint"], buckets, ours)
    for label, value in observations:
        reference.labels(label).observe(value)
        loop.labels(label).observe(value)
    # Bucket edges included: a value equal to a bound counts in that bound's bucket (le).
    for bound in buckets[:3]:
        reference.labels("edge").observe(bound)
        loop.labels("edge").observe(bound)
    assert without_created(generate_latest(ours)) == without_created(generate_latest(theirs))
    assert without_created(openmetrics_latest(ours)) == without_created(openmetrics_latest(theirs))


@given(increments=st.lists(st.tuples(st.sampled_from(["200", "503"]), values), max_size=40))
def test_a_counter_exposes_what_prometheus_client_would(
    increments: list[tuple[str, float]],
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Counter("frugal_t", "T.", ["endpoint", "status"], registry=theirs)
    loop = LoopCounter("frugal_t", "T.", ["endpoint", "status"], ours)
    for status, amount in increments:
        reference.labels("e", status).inc(amount)
        loop.labels("e", status).inc(amount)
    assert without_created(generate_latest(ours)) == without_created(generate_latest(theirs))
    assert without_created(openmetrics_latest(ours)) == without_created(openmetrics_latest(theirs))


def test_the_registry_reads_their_samples() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("frugal_t", "T.", ["endpoint"], registry)
    histogram = LoopHistogram("frugal_t_seconds", "T.", ["endpoint"], (0.1, 1.0), registry)
    counter.labels("e").inc(3)
    histogram.labels("e").observe(0.5)
    histogram.labels("e").observe(5.0)
    assert registry.get_sample_value("frugal_t_total", {"endpoint": "e"}) == 3
    assert registry.get_sample_value("frugal_t_seconds_bucket", {"endpoint": "e", "le": "1.0"}) == 1
    assert registry.get_sample_value("frugal_t_seconds_count", {"endpoint": "e"}) == 2
    assert registry.get_sample_value("frugal_t_seconds_sum", {"endpoint": "e"}) == 5.5


def test_bad_use_is_refused() -> None:
    registry = CollectorRegistry()
    counter = LoopCounter("frugal_t", "T.", ["endpoint"], registry)
    with pytest.raises(ValueError, match="only go up"):
        counter.labels("e").inc(-1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("e", "extra")
    with pytest.raises(ValueError, match="increasing"):
        LoopHistogram("frugal_u", "U.", [], (1.0, 0.5), registry)
