"""The server's time outside the model's batch, and its CPU per request, as functions of load:
fitted to a profile's open-loop levels (``frugal profile --http --rates``).

Why: a closed loop on one connection keeps both the server and the client hot, never lets two
requests arrive together and never lets the server go idle between them. Real (Poisson)
arrivals wake an idle event loop, open connections, land while the loop is parsing another
request, and share the cores with the model; on the 2-core machine of the validation that made
the median answer twice what the closed-loop levels predict (docs/autoscaling.md,
"Validation"). None of that is the batcher's queue, which the simulation models; all of it is
in what an open-loop level measured. So, per clean open-loop level (rate r, W workers):

1. simulate a Poisson trace at r on W replicas with the batch curve alone (no outside time);
   the CPU factor at r / W is the level's measured server CPU per request over the
   simulation's busy time per request (background work, connection handling and the cost of
   small batches that the closed-loop curve does not see; never below 1);
2. simulate it again with that factor; its latencies are the time in the replica;
3. fit a log-normal outside time (median, sigma) so that time in replica + outside time has
   the level's measured p50 and p99 from send (the load generator's own delay left out).

The simulator then reads median, sigma and factor at the arrival rate each replica sees
(``simulate_service.LoadCurve``). Nothing is fitted to the trace being simulated: only the
profile's levels, which are Poisson arrivals at fixed rates.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from frugal.optimize.endtoend import HttpProfile, OpenLevel
from frugal.scale.simulate import Fleet, Settings, _Simulation, simulate
from frugal.scale.simulate_service import LoadCurve, ServiceModel
from frugal.scale.traces import Trace

Z99 = 2.326  # the standard normal's 99th percentile
MIN_ARRIVALS = 4000  # per level: enough for a steady p99 of the simulated time in replica
_ITERATIONS = 20  # bisection steps: 2^-20 of the range
# A measured median at or below the simulated time in replica leaves the outside time at this,
# and its spread is bounded: a log-normal with a tiny median and a huge sigma would meet a p99
# while putting absurd answers past it.
MIN_OUTSIDE_S = 10e-6
MAX_SIGMA = 2.5  # p99 up to 335x the median


def calibrate(service: ServiceModel, http: HttpProfile, settings: Settings) -> ServiceModel:
    """``service`` with a load curve fitted to ``http``'s clean open-loop levels; unchanged
    when it has none (a profile without --rates, or one written before they existed)."""
    levels = [lv for lv in http.open_levels if lv.clean]
    if not levels:
        return service
    workers = max(http.server_workers, 1)
    plain = replace(service, load=None, network_s=0.0, jitter_sigma=0.0)
    fitted = [_fit(plain, lv, workers, settings, seed=k) for k, lv in enumerate(levels)]
    rates, medians, sigmas, factors = (np.asarray(column) for column in zip(*fitted, strict=True))
    curve = LoadCurve(
        rates_per_s=rates,
        median_s=medians,
        sigma=sigmas,
        cpu_factor=factors,
        source=f"{len(levels)} open-loop level(s), {rates.min():g}-{rates.max():g} req/s "
        "per replica",
    )
    return replace(service, load=curve)


def _fit(
    plain: ServiceModel, level: OpenLevel, workers: int, settings: Settings, seed: int
) -> tuple[float, float, float, float]:
    """(rate per replica, outside median s, outside sigma, CPU factor) of one level."""
    rate = level.rate_per_s / workers
    trace = _poisson(level.rate_per_s, max(level.seconds, MIN_ARRIVALS / level.rate_per_s), seed)
    fleet = Fleet(fixed=workers)
    quiet = replace(settings, cache_ttl_s=0.0, endpoint_ttl_s=(), bins=4)
    first = simulate(trace, plain, fleet, quiet)
    busy_per_request = first.busy_s / max(first.answered, 1)
    factor = max(level.server_cpu_s_per_request / busy_per_request, 1.0)
    flat = LoadCurve(
        rates_per_s=np.asarray([rate]),
        median_s=np.zeros(1),
        sigma=np.zeros(1),
        cpu_factor=np.asarray([factor]),
        source="",
    )
    run = _Simulation(trace, replace(plain, load=flat), fleet, quiet, None)
    run.run()
    inside = run.latency_s[~np.isnan(run.latency_s)]
    median, sigma = fit_outside(
        inside, level.p50_ms_from_send / 1000, level.p99_ms_from_send / 1000
    )
    return rate, median, sigma, factor


def fit_outside(inside_s: np.ndarray, p50_s: float, p99_s: float) -> tuple[float, float]:
    """The log-normal (median, sigma) that, added to ``inside_s`` draw by draw, gives a p50 and
    p99 of ``p50_s`` and ``p99_s`` (as near as a non-negative outside time of bounded spread
    can: a measured median under the time in replica leaves the outside time at nearly nothing).

    Nested bisection: for a sigma, the median that meets the p50 (the p50 grows with the median);
    then the sigma whose such median meets the p99 (with the p50 held, the p99 grows with sigma).
    """
    z = np.random.default_rng(1).standard_normal(inside_s.size)

    def percentile(median: float, sigma: float, q: float) -> float:
        return float(np.percentile(inside_s + median * np.exp(sigma * z), q))

    def median_for(sigma: float) -> float:
        low, high = math.log(MIN_OUTSIDE_S), math.log(max(p50_s, 2 * MIN_OUTSIDE_S))
        if percentile(math.exp(low), sigma, 50) >= p50_s:
            return MIN_OUTSIDE_S
        for _ in range(_ITERATIONS):
            mid = (low + high) / 2
            low, high = (mid, high) if percentile(math.exp(mid), sigma, 50) < p50_s else (low, mid)
        return math.exp((low + high) / 2)

    low, high = 0.0, MAX_SIGMA
    if percentile(median_for(high), high, 99) <= p99_s:
        return median_for(high), high
    if percentile(median_for(low), low, 99) >= p99_s:
        return median_for(low), low
    for _ in range(_ITERATIONS):
        mid = (low + high) / 2
        low, high = (mid, high) if percentile(median_for(mid), mid, 99) < p99_s else (low, mid)
    sigma = (low + high) / 2
    return median_for(sigma), sigma


def _poisson(rate_per_s: float, seconds: float, seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    count = max(int(rate_per_s * seconds), 1)
    t = np.cumsum(rng.exponential(1.0 / rate_per_s, count))
    return Trace(
        t_s=t,
        endpoint_ids=np.zeros(count, dtype=np.int64),
        endpoints=("e",),
        key_ids=np.full(count, -1, dtype=np.int64),
        keys=(),
    )


__all__ = ["calibrate", "fit_outside"]
