"""Prometheus metrics: live batcher state read at scrape time, bounded labels."""

from __future__ import annotations

from frugal.observability import BatcherState, ServingMetrics
from frugal.types import BatchStats


def test_scrape_reads_queue_depth_and_fitted_batch_cost() -> None:
    """Queue depth and a sized model's fitted batch cost appear as gauges when scraped."""
    metrics = ServingMetrics(slots=2, price_usd_per_hour=0.36)
    states = [BatcherState("minilm:1", 7, (0.002, 0.0003)), BatcherState("digits:1", 0, None)]
    metrics.watch_batchers(lambda: states)
    text = metrics.render().decode()
    assert 'frugal_queue_depth{model="minilm:1"} 7.0' in text
    assert 'frugal_queue_depth{model="digits:1"} 0.0' in text
    assert 'frugal_batch_overhead_seconds{model="minilm:1"} 0.002' in text
    assert 'frugal_batch_seconds_per_size_unit{model="minilm:1"} 0.0003' in text
    assert 'frugal_batch_overhead_seconds{model="digits:1"}' not in text


def test_batches_and_requests_are_counted_by_model_and_reason() -> None:
    """A batch adds to busy seconds and the batch-size histogram labelled by release reason."""
    metrics = ServingMetrics(slots=1, price_usd_per_hour=3.6)
    metrics.observe_batch(
        BatchStats(model="m:1", size=4, reason="full", started_at=0.0, busy_s=0.5,
                   cost_per_item_usd=0.0001, queue_s=(0.0, 0.1, 0.1, 0.2), failed=1)
    )  # fmt: skip
    metrics.observe_request("e", "m:1", 200, 0.01, 0.0004)
    text = metrics.render().decode()
    assert 'frugal_busy_seconds_total{model="m:1"} 0.5' in text
    assert 'frugal_batch_size_count{model="m:1",reason="full"} 1.0' in text
    assert 'frugal_item_errors_total{model="m:1"} 1.0' in text
    assert 'frugal_cost_usd_total{endpoint="e",model="m:1"} 0.0004' in text
    assert 'frugal_queue_seconds_count{model="m:1"} 4.0' in text
