"""The simulator's properties, each one that a wrong engine would break: Little's law, a fixed
fleet's bill, cost rising with load, no hits without repeated keys, scale to zero paying cold
starts, a policy's bounds and cooldowns, determinism, and conservation of requests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frugal.optimize.profiles import read_profile
from frugal.scale import named_policy
from frugal.scale.autoscaler import Autoscaler
from frugal.scale.simulate import Fleet, Settings, simulate
from frugal.scale.simulate_service import ServiceModel, service_model
from frugal.scale.traces import Trace, from_rows, generate

EXAMPLE_PROFILE = Path(__file__).parents[2] / "examples" / "cost-gate" / "profiles" / "digits.json"
PRICE = 0.0446  # $/h of one replica


def service(*, startup_s: float = 2.0, max_batch: int = 16, slow: float = 1.0) -> ServiceModel:
    """1 ms a batch plus 0.5 ms per request (x ``slow``): a replica serves ~1,000 req/s alone,
    ~1,800 in batches of 16 (a slow one proportionally less, which keeps traces short)."""
    b = np.arange(1, max_batch + 1, dtype=np.float64)
    model = (0.001 + 0.00005 * b) * slow
    return ServiceModel(batch_s=model + 0.0005 * b * slow, model_s=model, hit_s=0.0003 * slow,
                        network_s=0.0002, startup_s=startup_s, end_to_end=True)  # fmt: skip


def settings(**overrides: Any) -> Settings:
    return dataclasses.replace(Settings(slo_ms=100, replica_usd_per_hour=PRICE), **overrides)


def test_littles_law_holds() -> None:
    """Mean requests in the system = their throughput x their mean time in it."""
    trace = generate("spiky", rate=1500, duration_s=120, seed=1)
    for fleet in (Fleet(fixed=1), Fleet(policy=named_policy("aggressive"))):
        r = simulate(trace, service(), fleet, settings())
        assert r.mean_in_system > 0.5  # loaded enough for queues to form
        assert r.mean_in_system == pytest.approx(r.throughput_per_s * r.mean_sojourn_s, rel=1e-6)


def test_a_fixed_fleet_costs_replicas_times_price_times_duration() -> None:
    trace = generate("diurnal", rate=300, duration_s=600, seed=2)
    for n in (1, 3):
        r = simulate(trace, service(), Fleet(fixed=n), settings())
        assert r.cost_usd == pytest.approx(n * PRICE * r.duration_s / 3600, rel=1e-9)
        assert r.replica_hours == pytest.approx(n * r.duration_s / 3600, rel=1e-9)
        assert r.scale_events == 0 and r.cold_starts == 0
        assert r.duration_s >= trace.duration_s


@pytest.mark.parametrize("policy", ["conservative", "balanced", "aggressive"])
def test_more_load_never_costs_less(policy: str) -> None:
    costs = []
    for rate in (4, 16, 40, 100):
        trace = generate("diurnal", rate=rate, duration_s=900, seed=5)
        costs.append(simulate(trace, service(slow=50), Fleet(policy=named_policy(policy)),  # type: ignore[arg-type]
                              settings()).cost_usd)  # fmt: skip
    assert costs == sorted(costs)
    assert costs[-1] > costs[0]


def test_all_distinct_keys_never_hit_and_repeated_keys_do() -> None:
    distinct = from_rows([(i * 0.01, "e", f"k{i}") for i in range(2000)])
    r = simulate(distinct, service(), Fleet(fixed=1), settings(cache_ttl_s=600))
    assert r.hits == 0
    repeated = generate("steady", rate=100, duration_s=60, seed=1, distinct_keys=20)
    r = simulate(repeated, service(), Fleet(fixed=1), settings(cache_ttl_s=600))
    assert r.hits > 0.9 * len(repeated)  # 20 keys, each missed about once
    off = simulate(repeated, service(), Fleet(fixed=1), settings(cache_ttl_s=0))
    assert off.hits == 0


def test_a_short_ttl_hits_less_than_a_long_one() -> None:
    trace = generate("steady", rate=50, duration_s=300, seed=1, distinct_keys=2000)
    short = simulate(trace, service(), Fleet(fixed=1), settings(cache_ttl_s=5))
    long = simulate(trace, service(), Fleet(fixed=1), settings(cache_ttl_s=300))
    assert 0 < short.hits < long.hits


def _bursts_then_quiet() -> Trace:
    """Two busy minutes separated by twenty quiet ones."""
    first = generate("steady", rate=200, duration_s=60, seed=1).t_s
    second = 1260 + generate("steady", rate=200, duration_s=60, seed=2).t_s
    return from_rows([(float(t), "e", "") for t in np.concatenate([first, second])])


def test_scale_to_zero_pays_cold_starts_and_costs_less_idle() -> None:
    trace = _bursts_then_quiet()
    base = named_policy("aggressive")
    to_zero = dataclasses.replace(base, min_replicas=0)
    warm = simulate(trace, service(startup_s=5), Fleet(policy=base), settings())
    cold = simulate(trace, service(startup_s=5), Fleet(policy=to_zero), settings())
    assert warm.cold_starts == 0 and warm.cold_start_usd == 0
    assert cold.cold_starts >= 1
    assert cold.cold_start_usd == pytest.approx(cold.cold_starts * 5 * PRICE / 3600)
    assert cold.cost_usd < warm.cost_usd
    # The request that woke the fleet waited for the start-up; none did so with one kept warm.
    assert cold.p99_ms > warm.p99_ms and cold.series.replicas.min() == 0
    assert cold.answered == warm.answered == len(trace)


def test_a_policy_keeps_its_bounds_and_its_cooldown() -> None:
    trace = generate("spiky", rate=60, duration_s=900, seed=4)
    policy = dataclasses.replace(named_policy("aggressive"), min_replicas=2, max_replicas=4,
                                 initial_replicas=2, cooldown_s=45.0)  # fmt: skip
    r = simulate(trace, service(slow=50), Fleet(policy=policy), settings())
    assert r.scale_events >= 2
    assert all(2 <= n <= 4 for _, n, _ in r.events)
    assert 2 <= r.series.ready.min() and r.series.replicas.max() <= 4 and r.max_replicas <= 4
    times = [t for t, _, _ in r.events]
    assert min(np.diff(times)) >= 45.0


def test_upscale_waits_for_its_delay_and_downscale_for_its_own() -> None:
    policy = dataclasses.replace(named_policy("balanced"), upscale_delay_s=30,
                                 downscale_delay_s=300, cooldown_s=0)  # fmt: skip
    scaler = Autoscaler(policy)
    assert scaler.decide(0, 2, 0.95) is None
    assert scaler.decide(29, 2, 0.95) is None
    assert scaler.decide(30, 2, 0.95) == 3
    assert scaler.decide(31, 3, 0.1) is None
    assert scaler.decide(200, 3, 0.5) is None  # back in the band: the wait starts over
    assert scaler.decide(201, 3, 0.1) is None
    assert scaler.decide(500, 3, 0.1) is None
    assert scaler.decide(501, 3, 0.1) == 2


def test_the_same_inputs_give_the_same_figures() -> None:
    trace = generate("spiky", rate=800, duration_s=300, seed=9, distinct_keys=500)
    runs = [simulate(trace, service(), Fleet(policy=named_policy("balanced")),
                     settings(cache_ttl_s=30)).to_dict() for _ in range(2)]  # fmt: skip
    assert runs[0] == runs[1]


def test_every_request_is_answered_or_dropped_and_a_full_queue_drops() -> None:
    trace = generate("steady", rate=4000, duration_s=20, seed=1)  # twice one replica's capacity
    r = simulate(trace, service(), Fleet(fixed=1), settings(max_queue=50))
    assert r.dropped_queue_full > 0
    assert r.answered + r.dropped == r.requests == len(trace)
    assert r.over_slo_pct >= 100 * r.dropped / r.requests
    timed = simulate(trace, service(), Fleet(fixed=1), settings(timeout_ms=20))
    assert timed.dropped_timeout > 0 and timed.p99_ms <= 20 + 10  # + a batch and the network


def test_an_end_to_end_profile_counts_the_server_time() -> None:
    """The measured example's server time per request is most of a small model's cost."""
    profile = read_profile(EXAMPLE_PROFILE)
    full = service_model(profile, max_batch_size=32)
    bare = service_model(dataclasses.replace(profile, http=None), max_batch_size=32)
    assert full.end_to_end and not bare.end_to_end
    assert full.startup_s == profile.model_load_s
    assert np.all(full.batch_s > bare.batch_s)
    assert full.batch_s[0] > 2 * bare.batch_s[0]
    assert bare.hit_s == 0 < full.hit_s < full.batch_s[0]
    assert service_model(profile, max_batch_size=8, startup_s=0.5).startup_s == 0.5


def test_with_no_queue_latency_spreads_as_the_profile_measured() -> None:
    """At a load that forms no queue, the simulated p50 and p99 are the profile's least loaded
    level's (its jitter is drawn log-normal from that level's p50 and p99)."""
    profile = read_profile(EXAMPLE_PROFILE)
    assert profile.http is not None
    level = profile.http.levels[0]
    trace = generate("steady", rate=20, duration_s=600, seed=3)
    r = simulate(trace, service_model(profile, max_batch_size=32), Fleet(fixed=4), settings())
    assert r.p50_ms == pytest.approx(level.p50_ms, rel=0.1)
    assert r.p99_ms == pytest.approx(level.p99_ms, rel=0.25)
