"""The load curve fitted to a profile's open-loop levels, and the simulator reading it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.optimize import OpenLevel
from frugal.optimize.profiles import ProfileRecord, read_profile
from frugal.scale.simulate import Fleet, Settings, simulate
from frugal.scale.simulate_calibrate import MAX_SIGMA, MIN_OUTSIDE_S, calibrate, fit_outside
from frugal.scale.simulate_report import past_curve_note
from frugal.scale.simulate_service import service_model
from frugal.scale.traces import generate

EXAMPLE_PROFILE = Path(__file__).parents[2] / "examples" / "cost-gate" / "profiles" / "digits.json"
SETTINGS = Settings(slo_ms=100, replica_usd_per_hour=0.0446)


def open_level(rate: float, p50_ms: float, p99_ms: float, cpu_ms: float) -> OpenLevel:
    return OpenLevel(rate_per_s=rate, seconds=10.0, requests=int(rate * 10), errors=0,
                     req_per_s=rate, p50_ms=p50_ms + 0.5, p99_ms=p99_ms + 5, mean_ms=p50_ms,
                     p50_ms_from_send=p50_ms, p99_ms_from_send=p99_ms, send_lag_p99_ms=5.0,
                     server_cpu_s_per_request=cpu_ms / 1000,
                     server_cores_busy=rate * cpu_ms / 1000,
                     client_cpu_s_per_request=0.0002)  # fmt: skip


def with_open_levels(*levels: OpenLevel, workers: int = 1) -> ProfileRecord:
    profile = read_profile(EXAMPLE_PROFILE)
    assert profile.http is not None and not profile.http.open_levels
    http = dataclasses.replace(profile.http, open_levels=levels, server_workers=workers)
    return dataclasses.replace(profile, http=http)


LEVELS = (open_level(100, 2.5, 12.0, 1.6), open_level(400, 3.0, 30.0, 1.0))


@given(
    inside_ms=st.floats(0.1, 5.0),
    extra50_ms=st.floats(0.05, 10.0),
    spread=st.floats(1.0, 20.0),
)
@settings(max_examples=30, deadline=None)
def test_the_fitted_outside_time_gives_the_measured_p50_and_p99(
    inside_ms: float, extra50_ms: float, spread: float
) -> None:
    """Time in replica + the fitted log-normal has the p50 and p99 it was fitted to, unless
    the outside time's bounds (its floor, its largest spread) stop it, and then it falls short
    of the p99, never beyond."""
    inside = np.random.default_rng(0).exponential(inside_ms / 1000, 5_000)
    p50 = float(np.percentile(inside, 50)) + extra50_ms / 1000
    p99 = float(np.percentile(inside, 99)) + spread * extra50_ms / 1000
    median, sigma = fit_outside(inside, p50, p99)
    z = np.random.default_rng(1).standard_normal(inside.size)
    got50, got99 = np.percentile(inside + median * np.exp(sigma * z), [50, 99])
    assert got50 == pytest.approx(p50, rel=0.03) or median == MIN_OUTSIDE_S
    if sigma < MAX_SIGMA:
        assert got99 == pytest.approx(p99, rel=0.03)
    else:
        assert got99 <= p99 * 1.03


def test_a_profile_without_open_levels_is_not_changed() -> None:
    """No --rates in the profile: the closed-loop outside time, no load curve."""
    profile = read_profile(EXAMPLE_PROFILE)
    assert profile.http is not None
    service = service_model(profile, max_batch_size=32)
    assert calibrate(service, profile.http, SETTINGS) is service and service.load is None


@pytest.mark.parametrize("level", LEVELS, ids=["100/s", "400/s"])
def test_poisson_at_a_profiled_rate_gives_that_levels_figures(level: OpenLevel) -> None:
    """Simulating Poisson arrivals at a level's rate reproduces the level: p50 and p99 from
    send, and the server's CPU per request (as busy time), none of which the closed loop has."""
    profile = with_open_levels(*LEVELS)
    assert profile.http is not None
    plain = service_model(profile, max_batch_size=32)
    service = calibrate(plain, profile.http, SETTINGS)
    assert service.load is not None and plain.load is None
    trace = generate("steady", rate=level.rate_per_s, duration_s=60, seed=11)
    r = simulate(trace, service, Fleet(fixed=1), SETTINGS)
    assert r.p50_ms == pytest.approx(level.p50_ms_from_send, rel=0.15)
    assert r.p99_ms == pytest.approx(level.p99_ms_from_send, rel=0.15)
    assert r.busy_s / r.answered == pytest.approx(level.server_cpu_s_per_request, rel=0.1)
    closed = simulate(trace, plain, Fleet(fixed=1), SETTINGS)
    assert closed.p99_ms < 0.5 * level.p99_ms_from_send  # what the fit adds is not a no-op


def test_a_median_below_the_time_in_replica_stays_bounded() -> None:
    """A level whose median is under what the batch curve needs cannot be met: the outside
    time stays near nothing and its spread bounded, so the p99 is not blown up to meet it."""
    inside = np.full(10_000, 0.002)
    median, sigma = fit_outside(inside, 0.001, 0.010)
    assert median <= 2 * MIN_OUTSIDE_S and sigma <= MAX_SIGMA


def test_the_curve_is_read_per_replica() -> None:
    """Levels measured on two workers stand for half their rate on each replica, and a trace
    spread over two replicas reads the curve at its per-replica rate."""
    two = with_open_levels(*LEVELS, workers=2)
    assert two.http is not None
    service = calibrate(service_model(two, max_batch_size=32), two.http, SETTINGS)
    assert service.load is not None
    assert list(service.load.rates_per_s) == [50.0, 200.0]
    trace = generate("steady", rate=400, duration_s=60, seed=5)
    r = simulate(trace, service, Fleet(fixed=2), SETTINGS)
    assert r.p99_ms == pytest.approx(LEVELS[1].p99_ms_from_send, rel=0.15)


def test_more_outside_time_at_a_higher_rate_shows_in_the_latency() -> None:
    """Between two traces, the one at the rate whose level measured more outside time has the
    higher simulated median, though the batch curve alone gives them almost the same."""
    profile = with_open_levels(open_level(100, 1.0, 5.0, 0.9), open_level(400, 6.0, 30.0, 0.9))
    assert profile.http is not None
    service = calibrate(service_model(profile, max_batch_size=32), profile.http, SETTINGS)
    low = simulate(generate("steady", rate=100, duration_s=30, seed=2), service, Fleet(fixed=1),
                   SETTINGS)  # fmt: skip
    high = simulate(generate("steady", rate=400, duration_s=30, seed=2), service, Fleet(fixed=1),
                    SETTINGS)  # fmt: skip
    assert high.p50_ms > 3 * low.p50_ms


def test_arrivals_past_the_highest_level_are_counted_and_reported() -> None:
    """A spiky trace whose bursts go past the profile's highest open-loop level: the arrivals
    read at that level are counted, with the peak, and the report says to profile higher; a
    trace inside the measured rates gets no note."""
    profile = with_open_levels(*LEVELS)
    assert profile.http is not None
    service = calibrate(service_model(profile, max_batch_size=32), profile.http, SETTINGS)
    spiky = simulate(generate("spiky", rate=300, duration_s=60, seed=3), service,
                     Fleet(fixed=1), SETTINGS)  # fmt: skip
    assert spiky.past_curve > 0.05 * spiky.requests  # bursts at 5x the base pass 400 req/s
    assert spiky.peak_rate_per_s > 400
    note = past_curve_note(service.top_rate_per_s, [spiky])
    assert "highest open-loop level (400 req/s" in note and "--rates" in note
    assert spiky.to_dict()["past_load_curve"]["arrivals"] == spiky.past_curve
    inside = simulate(generate("steady", rate=150, duration_s=30, seed=3), service,
                      Fleet(fixed=1), SETTINGS)  # fmt: skip
    assert inside.past_curve <= 0.01 * inside.requests
    assert past_curve_note(service.top_rate_per_s, [inside]) == ""
