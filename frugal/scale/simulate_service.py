"""How long a replica takes to serve a batch, read from a measured profile: the simulator's one
source of service times, so a simulation is only as good as the profile it is given.

A replica is one ``frugal serve`` worker process: one batcher whose batches run one after the
other (Python's GIL keeps one process near one core). With an end-to-end profile (``frugal
profile --http``) a batch of ``b`` keeps the replica busy

    b x the server's CPU seconds per request at batch b

the CPU its process tree spent per answered request (HTTP, JSON, admission, the model, ledger,
metrics) at each measured concurrency, read from /proc, interpolated by the batch that
concurrency gives one worker (it falls as batches grow: part of the work is per batch). CPU
time, not the model-only points' wall-clock means: on a machine whose cores other processes
share, a wall-clock mean carries every preemption (on the shared 2-core VM of the validation,
batch 1's mean was 12x its median), and CPU time does not.

A model-only profile has no server time: a batch then takes the model's mean latency at ``b``
(interpolated between measured sizes), the simulation under-counts a small model's load, and
it says so.

The time a request spends outside the replica's busy time (the client's and the loopback's
share of the latency, and the server's own jitter: GC, the ledger's writer, the OS) is drawn
per answer, log-normal, with the median and p99 that the least loaded level measured beyond the
server's CPU per request (that level has almost no queue); it is added to the answer's latency
and never occupies a replica. A cache hit costs the
server's time for one request less the model's (its median at batch 1).

That closed-loop level under-counts what real arrivals cost (validation: medians half the
measured ones). A profile with open-loop levels (``frugal profile --http --rates``) replaces it
with a ``LoadCurve`` (``simulate_calibrate.py``): the outside time's median and spread, and the
server's CPU per request over the batch curve's, each by the arrival rate a replica sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from frugal.errors import InvalidInput
from frugal.optimize.profiles import ProfileRecord


@dataclass(frozen=True, slots=True, eq=False)
class LoadCurve:
    """What open-loop levels measured, by the arrival rate one replica sees (ascending): the
    time an answer spends outside the replica's busy time (log-normal: median, sigma of its
    log) and the server's CPU per request over the batch curve's at that rate. Between rates,
    linear; beyond the measured ones, the nearest (never extrapolated)."""

    rates_per_s: np.ndarray
    median_s: np.ndarray
    sigma: np.ndarray
    cpu_factor: np.ndarray
    source: str  # how it was fitted, for the report


@dataclass(frozen=True, slots=True, eq=False)
class ServiceModel:
    """Per batch size 1..max_batch_size: seconds one replica is busy with the batch."""

    batch_s: np.ndarray  # index b-1: model + server time of a batch of b
    model_s: np.ndarray  # index b-1: the model's part alone
    hit_s: float  # a cache hit: the server's time for one request, no model
    network_s: float  # median time outside the replica, added to every answer's latency
    startup_s: float  # from asking for a replica until it takes requests
    end_to_end: bool  # False: a model-only profile (no server time counted)
    # The spread of that outside time: log-normal, sigma of its log (0: always network_s).
    jitter_sigma: float = 0.0
    # With open-loop levels (``simulate_calibrate.py``): by the arrival rate one replica sees
    # (req/s, ascending), the outside time's median and sigma, and the factor by which the
    # server's CPU per request at that rate exceeds the batch curve's. None: the fixed values.
    load: LoadCurve | None = None

    def outside_s(self, count: int, seed: int = 0) -> np.ndarray:
        """``count`` draws of the time an answer spends outside the replica, reproducible."""
        if self.jitter_sigma <= 0 or self.network_s <= 0:
            return np.full(count, self.network_s)
        rng = np.random.default_rng(seed)
        return np.asarray(self.network_s * np.exp(self.jitter_sigma * rng.standard_normal(count)))

    def outside_at(self, rate_per_s: float, z: float) -> float:
        """The outside time of an answer arriving while one replica sees ``rate_per_s``, for
        the standard normal draw ``z`` (the fixed log-normal without a load curve)."""
        if self.load is None:
            if self.jitter_sigma <= 0 or self.network_s <= 0:
                return self.network_s
            return float(self.network_s * math.exp(self.jitter_sigma * z))
        curve = self.load
        median = float(np.interp(rate_per_s, curve.rates_per_s, curve.median_s))
        sigma = float(np.interp(rate_per_s, curve.rates_per_s, curve.sigma))
        return median * math.exp(sigma * z)

    @property
    def top_rate_per_s(self) -> float:
        """The load curve's highest measured rate per replica (inf without a curve)."""
        return float(self.load.rates_per_s[-1]) if self.load is not None else math.inf

    def cpu_factor_at(self, rate_per_s: float) -> float:
        """How much longer a batch keeps a replica busy at this load than the batch curve says
        (1 without a load curve)."""
        if self.load is None:
            return 1.0
        return float(np.interp(rate_per_s, self.load.rates_per_s, self.load.cpu_factor))

    @property
    def max_batch_size(self) -> int:
        return int(self.batch_s.size)

    def capacity_per_s(self) -> float:
        """Requests/s one replica serves at its largest batch (busy all the time)."""
        return self.max_batch_size / float(self.batch_s[-1])


def service_model(
    profile: ProfileRecord,
    *,
    max_batch_size: int,
    startup_s: float | None = None,
) -> ServiceModel:
    """The service times of ``profile`` at ``max_batch_size``; ``startup_s`` overrides the
    profile's measured ``model_load_s`` (which a profile written before load times lacks)."""
    if startup_s is None:
        startup_s = profile.model_load_s
    if startup_s is None:
        raise InvalidInput(
            f"{profile.file} has no model_load_s: give the replicas' start-up time",
            field="--startup-s",
            hint="re-run `frugal profile` (it records the load time) or pass --startup-s",
        )
    sizes = np.asarray([p.batch_size for p in profile.points], dtype=np.float64)
    means_s = np.asarray([p.mean_ms for p in profile.points], dtype=np.float64) / 1000
    medians_s = np.asarray([p.p50_ms for p in profile.points], dtype=np.float64) / 1000
    batches = np.arange(1, max_batch_size + 1, dtype=np.float64)
    model_s = _interpolate(batches, sizes, means_s)
    if profile.http is None:
        batch_s, hit_s, network_s, sigma = model_s, 0.0, 0.0, 0.0
    else:
        http = profile.http
        clean = [lv for lv in http.levels if lv.clean] or list(http.levels)
        workers = max(http.server_workers, 1)
        # One worker holds about concurrency / workers requests of a closed-loop level; those
        # are the batch its batcher forms.
        level_b = np.asarray(
            [min(max(lv.concurrency / workers, 1.0), http.max_batch_size) for lv in clean]
        )
        cpu = np.asarray([lv.server_cpu_s_per_request for lv in clean])
        order = np.argsort(level_b, kind="stable")
        per_request = np.interp(batches, level_b[order], cpu[order])
        batch_s = batches * per_request
        model_s = np.minimum(model_s, batch_s)
        model_alone_s = float(np.interp(1.0, sizes, medians_s))
        hit_s = max(float(per_request[0]) - model_alone_s, 0.0)
        network_s = max(clean[0].p50_ms / 1000 - float(cpu[0]), 0.0)
        # The least loaded level has (almost) no queue, so the spread of its latencies is the
        # server's own jitter (GC, the ledger's writer, the OS) and the client's: p99 = median
        # x exp(2.326 sigma) for a log-normal.
        tail_s = clean[0].p99_ms / 1000 - float(cpu[0])
        sigma = math.log(tail_s / network_s) / 2.326 if tail_s > network_s > 0 else 0.0
    return ServiceModel(
        batch_s=batch_s,
        model_s=model_s,
        hit_s=hit_s,
        network_s=network_s,
        startup_s=float(startup_s),
        end_to_end=profile.http is not None,
        jitter_sigma=sigma,
    )


def _interpolate(at: np.ndarray, sizes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear between measured batch sizes; past the largest, its per-item time continues (a
    batch twice as large takes twice as long); below the smallest, the smallest's time."""
    inside = np.interp(at, sizes, values)
    per_item = values[-1] / sizes[-1]
    return np.asarray(np.where(at > sizes[-1], values[-1] + (at - sizes[-1]) * per_item, inside))


__all__ = ["LoadCurve", "ServiceModel", "service_model"]
