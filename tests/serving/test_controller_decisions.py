"""The policy controller's decisions and readings as pure functions: readings in, a move out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.config import BatchingControl, Bounds, CacheControl, DegradeControl
from frugal.serving.controller_decisions import (
    CacheReading,
    LatencyReading,
    decide_degrade,
    decide_max_wait,
    decide_ttl,
)
from frugal.serving.controller_readings import LatencyWindow, bucket_of, upper_ms

WAIT = BatchingControl(model="m", slo_p99_ms=100, max_wait_ms=Bounds(min=1, max=20), step=2)
TTL = CacheControl(endpoint="e", ttl_s=Bounds(min=10, max=600), staleness_budget_s=120)
DEGRADE = DegradeControl(endpoint="e", rule="busy", on_above=50, off_below=5, min_on_s=3)


# ---- max_wait_ms --------------------------------------------------------------------------


def test_over_the_slo_the_wait_is_divided_by_the_step() -> None:
    """A p99 over the SLO halves the wait (step 2) and says why."""
    move = decide_max_wait(8, LatencyReading(140, 500), WAIT, min_samples=50)
    assert move is not None and move.new == 4
    assert "over the SLO 100 ms" in move.reason


def test_well_under_the_slo_the_wait_grows_by_the_step() -> None:
    """A p99 under half the SLO doubles the wait: fuller batches."""
    move = decide_max_wait(4, LatencyReading(20, 500), WAIT, min_samples=50)
    assert move is not None and move.new == 8


@pytest.mark.parametrize("p99_ms", [50, 70, 99.9, 100])
def test_inside_the_band_the_wait_holds(p99_ms: float) -> None:
    """Between raise_below x SLO and the SLO itself nothing moves (hysteresis)."""
    assert decide_max_wait(4, LatencyReading(p99_ms, 500), WAIT, min_samples=50) is None


def test_too_few_samples_hold() -> None:
    """Under min_samples since the last change the reading says too little to act on."""
    assert decide_max_wait(4, LatencyReading(900, 49), WAIT, min_samples=50) is None


@pytest.mark.parametrize(("current", "p99_ms", "expected"), [(1.5, 500, 1), (15, 5, 20)])
def test_a_step_stops_at_the_bound(current: float, p99_ms: float, expected: float) -> None:
    """A step that would pass a bound lands on it."""
    move = decide_max_wait(current, LatencyReading(p99_ms, 500), WAIT, min_samples=50)
    assert move is not None and move.new == expected


@pytest.mark.parametrize(("current", "p99_ms"), [(1, 500), (20, 5)])
def test_at_the_bound_it_holds(current: float, p99_ms: float) -> None:
    """Already at the bound the reading pushes against: no move at all."""
    assert decide_max_wait(current, LatencyReading(p99_ms, 500), WAIT, min_samples=50) is None


def test_a_longer_wait_that_would_cross_the_slo_is_not_taken() -> None:
    """p99 45 ms under a 100 ms SLO, wait 60 -> 120 would add 60 ms: it holds instead."""
    wide = WAIT.model_copy(update={"max_wait_ms": WAIT.max_wait_ms.model_copy(update={"max": 500})})
    assert decide_max_wait(60, LatencyReading(45, 500), wide, min_samples=50) is None


# ---- cache ttl_s --------------------------------------------------------------------------


def cache(lookups: int, hits: int, mean_age_s: float | None = None) -> CacheReading:
    stored = hits if mean_age_s is not None else 0
    return CacheReading(lookups, hits, stored, (mean_age_s or 0.0) * stored)


def test_a_high_hit_ratio_keeps_answers_longer() -> None:
    """80% hits, fresh ones: the TTL doubles."""
    move = decide_ttl(60, cache(100, 80, mean_age_s=5), TTL, min_samples=50)
    assert move is not None and move.new == 120 and "hit ratio 0.80" in move.reason


def test_a_low_hit_ratio_keeps_them_shorter() -> None:
    """5% hits: entries are rarely reused, the TTL halves."""
    move = decide_ttl(60, cache(100, 5, mean_age_s=5), TTL, min_samples=50)
    assert move is not None and move.new == 30 and "rarely reused" in move.reason


@pytest.mark.parametrize("hits", [10, 30, 49])
def test_between_the_ratios_the_ttl_holds(hits: int) -> None:
    assert decide_ttl(60, cache(100, hits, mean_age_s=5), TTL, min_samples=50) is None


def test_hits_older_than_the_staleness_budget_shorten_the_ttl_at_any_ratio() -> None:
    """95% hits, but they average 200 s old against a 120 s budget: shorter, for staleness."""
    move = decide_ttl(400, cache(100, 95, mean_age_s=200), TTL, min_samples=50)
    assert move is not None and move.new == 200 and "staleness budget" in move.reason


def test_a_longer_ttl_that_would_age_hits_past_the_budget_is_not_taken() -> None:
    """Hits average 70 s at TTL 100; doubling would make them about 140 s: it holds."""
    assert decide_ttl(100, cache(100, 90, mean_age_s=70), TTL, min_samples=50) is None


def test_few_lookups_hold_the_ttl() -> None:
    assert decide_ttl(60, cache(10, 10, mean_age_s=1), TTL, min_samples=50) is None


@pytest.mark.parametrize(("current", "hits", "expected"), [(15, 0, 10), (500, 100, 600)])
def test_a_ttl_step_stops_at_the_bound(current: float, hits: int, expected: float) -> None:
    move = decide_ttl(current, cache(100, hits, mean_age_s=1), TTL, min_samples=50)
    assert move is not None and move.new == expected


# ---- degrade ------------------------------------------------------------------------------


def test_the_rule_goes_on_when_the_queue_reaches_on_above() -> None:
    move = decide_degrade(False, 50, 0, DEGRADE)
    assert move is not None and move.new == 1 and "queue_depth 50 reached 50" in move.reason


@pytest.mark.parametrize("depth", [6, 20, 49])
def test_inside_the_band_the_rule_stays_as_it_is(depth: float) -> None:
    """Between off_below and on_above: an off rule stays off, an on rule stays on."""
    assert decide_degrade(False, depth, 100, DEGRADE) is None
    assert decide_degrade(True, depth, 100, DEGRADE) is None


def test_the_rule_goes_off_once_drained_and_on_long_enough() -> None:
    assert decide_degrade(True, 5, 2.9, DEGRADE) is None  # min_on_s not passed yet
    move = decide_degrade(True, 5, 3, DEGRADE)
    assert move is not None and move.new == 0


def test_the_wait_signal_reads_the_wait() -> None:
    by_wait = DEGRADE.model_copy(update={"signal": "wait_ms"})
    move = decide_degrade(False, 75.5, 0, by_wait)
    assert move is not None and move.reason.startswith("wait_ms 75.5")


# ---- properties: never past a bound, always toward the reading ----------------------------

positive = st.floats(min_value=0.01, max_value=1e5, allow_nan=False)


@given(
    low=positive, span=positive, start=st.floats(0, 1), step=st.floats(1.01, 10),
    p99_ms=st.floats(0, 1e6), slo=positive,
)  # fmt: skip
def test_max_wait_never_leaves_its_bounds_and_moves_against_the_latency(
    low: float, span: float, start: float, step: float, p99_ms: float, slo: float
) -> None:
    high = low + span
    current = low + start * span
    control = BatchingControl(model="m", slo_p99_ms=slo, step=step,
                              max_wait_ms=Bounds(min=low, max=high))  # fmt: skip
    move = decide_max_wait(current, LatencyReading(p99_ms, 10), control, min_samples=1)
    if move is None:
        return
    assert low <= move.new <= high
    assert (move.new < current) == (p99_ms > slo)


@given(
    start=st.floats(0, 1), lookups=st.integers(1, 10_000), ratio=st.floats(0, 1),
    age_s=st.one_of(st.none(), st.floats(0, 1e4)),
)  # fmt: skip
def test_ttl_never_leaves_its_bounds(
    start: float, lookups: int, ratio: float, age_s: float | None
) -> None:
    current = 10 + start * 590
    move = decide_ttl(current, cache(lookups, int(ratio * lookups), age_s), TTL, min_samples=1)
    if move is not None:
        assert 10 <= move.new <= 600
        stale = age_s is not None and age_s > TTL.staleness_budget_s
        assert (move.new < current) == (stale or int(ratio * lookups) / lookups < 0.1)


# ---- readings -----------------------------------------------------------------------------


@pytest.mark.parametrize("latency_ms", [0.005, 0.02, 1, 3.7, 100, 12_345])
def test_a_latency_falls_in_a_bucket_at_most_5_percent_below_its_upper_edge(
    latency_ms: float,
) -> None:
    upper = upper_ms(bucket_of(latency_ms))
    assert latency_ms <= upper and (latency_ms <= 0.01 or upper <= latency_ms * 1.05 + 1e-9)


def test_the_window_reads_the_p99_of_samples_after_a_change_and_within_the_window() -> None:
    """Slots closed at or before ``since`` and slots past the window are not read."""
    window = LatencyWindow(window_s=10)
    window.observe([500.0] * 100)
    window.close(1.0)  # before the change at t=1: not read
    window.observe([1.0] * 99 + [40.0])
    window.close(2.0)
    reading = window.reading(since=1.0)
    assert reading.samples == 100
    assert 1.0 <= reading.p99_ms <= 1.05  # 99 of 100 at 1 ms: the 99th is 1 ms
    window.observe([40.0] * 2)
    window.close(3.0)
    assert 40 <= window.reading(since=1.0).p99_ms <= 42  # now 3 of 102 at 40 ms
    window.close(12.5)  # the slots of t=1, 2 pass out of the 10 s window
    assert window.reading(since=0).samples == 2


def test_an_empty_window_reads_no_samples() -> None:
    assert LatencyWindow(window_s=5).reading(since=0).samples == 0


def test_config_steps_must_move() -> None:
    """A step of 1 would never move: the config refuses it."""
    with pytest.raises(ValueError, match="greater than 1"):
        BatchingControl(model="m", slo_p99_ms=1, max_wait_ms=Bounds(min=1, max=2), step=1)
