"""What one simulated fleet cost and how it served: the figures ``frugal simulate`` prints,
writes as JSON and plots, computed once here from the engine's raw tallies.

The bill splits the way the ledger's does (docs/cost-model.md): every replica-second billed is
either starting (a cold start from zero, or a scale-up), or up; up time is either allocated (a
replica busy with model + server work) or idle. A cheap fleet that misses its SLO is not a
saving, so latency and drops sit next to the dollars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """Per time bin (ending at ``t_s``): offered load, replicas billed and up, p99 latency."""

    t_s: np.ndarray
    arrivals_per_s: np.ndarray
    replicas: np.ndarray  # billed: starting, up or draining
    ready: np.ndarray  # up and taking requests
    p99_ms: np.ndarray  # nan: nothing answered in the bin

    def to_dict(self) -> dict[str, list[float | None]]:
        def clean(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), 4) for v in values]

        return {
            "t_s": clean(self.t_s),
            "arrivals_per_s": clean(self.arrivals_per_s),
            "replicas": clean(self.replicas),
            "ready": clean(self.ready),
            "p99_ms": clean(self.p99_ms),
        }


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    """One fleet on one trace."""

    label: str
    requests: int
    answered: int  # cache hits included
    hits: int
    dropped_queue_full: int
    dropped_timeout: int
    duration_s: float  # 0 to the last arrival or answer, whichever is later
    replica_hours: float  # billed: starting and up
    busy_s: float  # model + server time, all replicas
    ready_s: float  # replica-seconds up
    cost_usd: float
    cold_start_usd: float  # replicas starting from zero
    startup_usd: float  # replicas starting while others served (scale-ups)
    allocated_usd: float  # busy time's share of the bill
    idle_usd: float  # up and not busy
    p50_ms: float
    p99_ms: float
    mean_ms: float
    over_slo_pct: float  # of all requests: answered later than the SLO, or dropped
    slo_ms: float
    events: tuple[tuple[float, int, str], ...]  # (t_s, replicas after, "up" | "down" | "cold")
    cold_starts: int
    max_replicas: int
    mean_in_system: float  # Little's law, over requests that reached a replica's queue
    mean_sojourn_s: float
    throughput_per_s: float  # of those requests, leaving per second
    series: Series
    # With a load curve: arrivals while a replica saw more than its highest measured level
    # (their outside time read at that level), and the highest rate one replica saw.
    past_curve: int = 0
    peak_rate_per_s: float = 0.0

    @property
    def scale_events(self) -> int:
        return len(self.events)

    @property
    def dropped(self) -> int:
        return self.dropped_queue_full + self.dropped_timeout

    @property
    def usd_per_1k(self) -> float:
        """Per thousand answered requests (nan when none was answered)."""
        return self.cost_usd / self.answered * 1000 if self.answered else math.nan

    @property
    def utilization(self) -> float:
        """Busy over up time: the share of what was paid for (start-ups aside) that worked."""
        return self.busy_s / self.ready_s if self.ready_s > 0 else 0.0

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        def num(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 6)

        return {
            "fleet": self.label,
            "requests": self.requests,
            "answered": self.answered,
            "cache_hits": self.hits,
            "dropped": {"queue_full": self.dropped_queue_full, "timeout": self.dropped_timeout},
            "duration_s": num(self.duration_s),
            "usd": {
                "total": num(self.cost_usd),
                "per_1k": num(self.usd_per_1k),
                "cold_start": num(self.cold_start_usd),
                "startup": num(self.startup_usd),
                "allocated": num(self.allocated_usd),
                "idle": num(self.idle_usd),
            },
            "replica_hours": num(self.replica_hours),
            "utilization": num(self.utilization),
            "latency_ms": {
                "p50": num(self.p50_ms),
                "p99": num(self.p99_ms),
                "mean": num(self.mean_ms),
            },
            "slo_ms": self.slo_ms,
            "over_slo_pct": num(self.over_slo_pct),
            "scale_events": [
                {"t_s": round(t, 3), "replicas": n, "why": why} for t, n, why in self.events
            ],
            "cold_starts": self.cold_starts,
            "max_replicas": self.max_replicas,
            "past_load_curve": {
                "arrivals": self.past_curve,
                "peak_rate_per_replica_s": num(self.peak_rate_per_s),
            },
            "series": self.series.to_dict(),
        }


def summarize(
    *,
    label: str,
    settings_slo_ms: float,
    usd_per_hour: float,
    duration_s: float,
    latency_s: np.ndarray,
    hits: int,
    dropped_full: int,
    dropped_timeout: int,
    billed_s: float,
    ready_s: float,
    busy_s: float,
    cold_s: float,
    startup_s: float,
    events: tuple[tuple[float, int, str], ...],
    cold_starts: int,
    max_replicas: int,
    little: tuple[float, float, int],
    series: Series,
    past_curve: tuple[int, float] = (0, 0.0),
) -> SimResult:
    """The engine's tallies as figures and dollars."""
    per_s = usd_per_hour / 3600
    answered = latency_s[~np.isnan(latency_s)]
    if answered.size:
        p50, p99 = (float(v) * 1000 for v in np.percentile(answered, [50, 99]))
        mean = float(answered.mean()) * 1000
    else:
        p50 = p99 = mean = math.nan
    late = int((answered * 1000 > settings_slo_ms).sum())
    requests = int(latency_s.size)
    dropped = dropped_full + dropped_timeout
    area, sojourn_s, departures = little
    allocated = min(busy_s, ready_s) * per_s
    return SimResult(
        label=label,
        requests=requests,
        answered=int(answered.size),
        hits=hits,
        dropped_queue_full=dropped_full,
        dropped_timeout=dropped_timeout,
        duration_s=duration_s,
        replica_hours=billed_s / 3600,
        busy_s=busy_s,
        ready_s=ready_s,
        cost_usd=billed_s * per_s,
        cold_start_usd=cold_s * per_s,
        startup_usd=startup_s * per_s,
        allocated_usd=allocated,
        idle_usd=max(ready_s * per_s - allocated, 0.0),
        p50_ms=p50,
        p99_ms=p99,
        mean_ms=mean,
        over_slo_pct=100 * (late + dropped) / requests if requests else 0.0,
        slo_ms=settings_slo_ms,
        events=events,
        cold_starts=cold_starts,
        max_replicas=max_replicas,
        mean_in_system=area / duration_s if duration_s > 0 else 0.0,
        mean_sojourn_s=sojourn_s / departures if departures else 0.0,
        throughput_per_s=departures / duration_s if duration_s > 0 else 0.0,
        series=series,
        past_curve=past_curve[0],
        peak_rate_per_s=past_curve[1],
    )


def time_series(
    arrivals_t_s: np.ndarray,
    end_s: float,
    bins: int,
    changes: list[tuple[float, int, int]],
    done_s: np.ndarray,
    latency_s: np.ndarray,
) -> Series:
    """Load, replicas and p99 latency per time bin, for the plot and the JSON; ``changes`` are
    (t, replicas billed, replicas up) at each change, ``done_s``/``latency_s`` per request
    (nan: dropped)."""
    bins = max(1, min(bins, math.ceil(end_s) or 1))
    edges = np.linspace(0.0, end_s if end_s > 0 else 1.0, bins + 1)
    width = float(edges[1] - edges[0])
    arrivals, _ = np.histogram(arrivals_t_s, bins=edges)
    change_t = np.asarray([c[0] for c in changes])
    # Replicas at each bin's middle (at its end, the last bin would show the final stop).
    at = np.searchsorted(change_t, (edges[:-1] + edges[1:]) / 2, side="right") - 1
    billed = np.asarray([changes[j][1] for j in at])
    ready = np.asarray([changes[j][2] for j in at])
    answered = ~np.isnan(latency_s)
    which = np.clip(np.searchsorted(edges, done_s[answered], side="right") - 1, 0, bins - 1)
    lat = latency_s[answered]
    p99 = np.full(bins, np.nan)
    order = np.argsort(which, kind="stable")
    which, lat = which[order], lat[order]
    bounds = np.searchsorted(which, np.arange(bins + 1))
    for b in range(bins):
        part = lat[bounds[b] : bounds[b + 1]]
        if part.size:
            p99[b] = float(np.percentile(part, 99)) * 1000
    return Series(
        t_s=edges[1:], arrivals_per_s=arrivals / width, replicas=billed, ready=ready, p99_ms=p99
    )


__all__ = ["Series", "SimResult", "summarize", "time_series"]
