"""``frugal simulate``'s engine: a discrete-event simulation of a trace through the cache, a
fleet of replicas (each a batcher, as measured by a profile) and a scaling policy, priced.

The path of one arrival, in simulated time (heapq of events, deterministic: no clock, no
randomness of its own; the trace carries the randomness):

1. cache: a key answered within the TTL is a hit; it costs a replica the server's time for one
   request, no model, and needs a replica that is up (the cache lives in the server);
2. else it goes to the up replica with the fewest requests outstanding (Ray Serve's router and
   the kernel's accept queue both approximate this), and waits in its batcher's queue: bounded
   by ``max_queue`` (a full queue drops it), and by ``timeout_ms`` (dropped when its batch
   would start later than that); with no replica up it waits at the router for one to start;
3. a replica runs one batch at a time (``simulate_service.py``): an idle replica starts at once
   with what waits, a busy one gathers the next batch (frugal's smart queueing);
4. the autoscaler (``autoscaler.py``) reads the fleet's true utilization (model + server time
   over replica time, the last ``window_s``) every ``tick_s`` and adds or removes replicas; an
   added replica is billed from the moment it is asked for and serves ``startup_s`` later; a
   removed one takes no new requests, finishes its queue, then stops being billed. With no
   replica at all (scale to zero) an arrival starts one at once: a cold start, priced as its
   own line, its wait in the latency of the requests that paid it.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from frugal.scale.autoscaler import Autoscaler
from frugal.scale.policies import ScalingPolicy
from frugal.scale.simulate_result import SimResult, summarize, time_series
from frugal.scale.simulate_service import ServiceModel
from frugal.scale.traces import Trace

_DONE, _READY, _TICK = 0, 1, 2
# The arrival rate a load curve is read at: arrivals over this much past. Short, because what
# the curve stands for (how much a request costs beyond the batch curve: idle wake-ups, requests
# landing while the loop parses others) follows the load within milliseconds. A 1 s window lagged
# a spiky trace's 1 s bursts: their first part read the quiet base's dearer requests, and the
# simulated p99 came out 38% over the measured one (docs/autoscaling.md, run 10).
RATE_WINDOW_S = 0.1


@dataclass(frozen=True, slots=True)
class Settings:
    """What a simulation holds fixed across the fleets it compares."""

    slo_ms: float
    replica_usd_per_hour: float  # one replica's share of its instance
    max_queue: int = 1024  # per replica (batching.max_queue), and at the router
    timeout_ms: float = 10_000.0  # batching.timeout_ms
    cache_ttl_s: float = 0.0  # 0: no cache
    endpoint_ttl_s: tuple[tuple[str, float], ...] = ()  # per endpoint, in place of cache_ttl_s
    tick_s: float = 1.0  # how often the autoscaler looks
    window_s: float = 10.0  # the utilization it reads is over this much past
    bins: int = 240  # points of the time series (plot, JSON)


@dataclass(frozen=True, slots=True)
class Fleet:
    """A policy to simulate, or a fixed number of replicas (the baseline autoscaling beats)."""

    policy: ScalingPolicy | None = None
    fixed: int | None = None

    def __post_init__(self) -> None:
        if (self.policy is None) == (self.fixed is None):
            raise ValueError("a fleet is a policy or a fixed replica count")
        if self.fixed is not None and self.fixed < 1:
            raise ValueError("a fixed fleet has at least one replica")

    @property
    def label(self) -> str:
        return f"fixed {self.fixed}" if self.policy is None else self.policy.name


@dataclass(slots=True, eq=False)
class _Replica:
    index: int  # in _Simulation.replicas
    asked_s: float
    cold: bool  # started because no replica at all was up or starting
    ready_s: float | None = None
    stop_s: float | None = None
    draining: bool = False
    queue: deque[tuple[float, int]] = field(default_factory=deque)  # (arrival s, request)
    running: list[tuple[float, int]] = field(default_factory=list)
    debt_s: float = 0.0  # cache hits' server time, paid by the next batch

    @property
    def outstanding(self) -> int:
        return len(self.queue) + len(self.running)


class _Simulation:
    def __init__(
        self,
        trace: Trace,
        service: ServiceModel,
        fleet: Fleet,
        settings: Settings,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.trace, self.service, self.fleet, self.settings = trace, service, fleet, settings
        self.on_progress = on_progress
        self.autoscaler = Autoscaler(fleet.policy) if fleet.policy is not None else None
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.replicas: list[_Replica] = []  # every replica ever asked for
        self.live: list[_Replica] = []  # those not stopped (starting, up or draining)
        self.pending: deque[tuple[float, int]] = deque()  # at the router, no replica up
        self.expiry: dict[int, float] = {}  # cache key -> until when it answers
        ttls = dict(settings.endpoint_ttl_s)
        self.ttl_s = [ttls.get(e, settings.cache_ttl_s) for e in trace.endpoints]
        n = len(trace)
        self.latency_s = np.full(n, np.nan)  # per request; nan: dropped
        self.outside_s = service.outside_s(n)  # each answer's time outside the replica
        # With a load curve the outside time and the CPU per request follow the arrival rate
        # one replica sees (the last RATE_WINDOW_S of arrivals): draws are made at arrival.
        self.z = np.random.default_rng(0).standard_normal(n) if service.load is not None else None
        # Arrivals that came while a replica saw more than the load curve's highest level:
        # read at that level (never extrapolated), which the report says.
        self.past_curve = 0
        self.peak_rate_per_s = 0.0
        self.recent: deque[float] = deque()  # arrival times within RATE_WINDOW_S
        self.done_s = np.full(n, np.nan)
        self.hit = np.zeros(n, dtype=bool)
        self.dropped_full = self.dropped_timeout = 0
        self.busy_s = 0.0
        # Little's law bookkeeping over misses: area under N(t), and the time each spent.
        self.in_system, self.area, self.last_change_s = 0, 0.0, 0.0
        self.sojourn_s, self.departures = 0.0, 0
        self.ready_area, self.ready_count, self.ready_change_s = 0.0, 0, 0.0
        self.snapshots: deque[tuple[float, float, float]] = deque()  # (t, busy, ready area)
        self.changes: list[tuple[float, int, int]] = [(0.0, 0, 0)]  # (t, billed, ready)
        self.events: list[tuple[float, int, str]] = []  # (t, replicas after, up|down|cold)
        self.cold_starts = 0
        self.now = 0.0

    # --- events -----------------------------------------------------------------------------
    def push(self, t: float, kind: int, payload: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, payload))

    def run(self) -> SimResult:
        initial = (
            self.fleet.fixed if self.fleet.policy is None else self.fleet.policy.initial_replicas
        )
        for _ in range(initial or 0):
            self._ready(self._new_replica(cold=False).index, 0.0)
        if self.autoscaler is not None and len(self.trace):
            self.push(self.settings.tick_s, _TICK, 0)
        times = self.trace.t_s
        n, i = len(self.trace), 0
        while i < n or self.heap:
            if i < n and (not self.heap or times[i] < self.heap[0][0]):
                self.now = float(times[i])
                self._arrive(i)
                i += 1
                if self.on_progress is not None and i % 10_000 == 0:
                    self.on_progress(i)
                continue
            t, _, kind, payload = heapq.heappop(self.heap)
            self.now = t
            if kind == _DONE:
                self._done(payload)
            elif kind == _READY:
                self._ready(payload, t)
            elif i < n:  # ticks stop with the arrivals, so the run ends
                self._tick()
        if self.on_progress is not None:
            self.on_progress(n)
        return self._result()

    def _rate_per_replica(self, up: int) -> float:
        """Arrivals per second one up replica sees, over the last RATE_WINDOW_S."""
        span = min(max(self.now, 0.05), RATE_WINDOW_S)
        return len(self.recent) / span / max(up, 1)

    def _arrive(self, i: int) -> None:
        t = self.now
        key, endpoint = int(self.trace.key_ids[i]), int(self.trace.endpoint_ids[i])
        up = self._up()
        if self.z is not None:
            self.recent.append(t)
            while self.recent[0] < t - RATE_WINDOW_S:
                self.recent.popleft()
            rate = self._rate_per_replica(len(up))
            self.outside_s[i] = self.service.outside_at(rate, float(self.z[i]))
            self.peak_rate_per_s = max(self.peak_rate_per_s, rate)
            if rate > self.service.top_rate_per_s:
                self.past_curve += 1
        if key >= 0 and self.ttl_s[endpoint] > 0:
            cache_key = key * len(self.trace.endpoints) + endpoint
            if up and self.expiry.get(cache_key, -1.0) > t:
                replica = min(up, key=lambda r: r.outstanding)
                replica.debt_s += self.service.hit_s
                self.busy_s += self.service.hit_s
                self.hit[i] = True
                self.latency_s[i] = self.service.hit_s + self.outside_s[i]
                self.done_s[i] = t
                return
        self._enter(t)
        if up:
            self._assign(min(up, key=lambda r: r.outstanding), t, i)
            return
        if len(self.pending) >= self.settings.max_queue:
            self.dropped_full += 1
            self._leave(t, t)
            return
        self.pending.append((t, i))
        if not any(r.ready_s is None for r in self.live):
            self._add(1, cold=True)  # scaled to zero: the arrival itself starts one
            if self.autoscaler is not None:
                self.autoscaler.moved(t)

    def _assign(self, replica: _Replica, arrived_s: float, i: int) -> None:
        if len(replica.queue) >= self.settings.max_queue:
            self.dropped_full += 1
            self._leave(arrived_s, self.now)
            return
        replica.queue.append((arrived_s, i))
        if not replica.running:
            self._start_batch(replica)

    def _start_batch(self, replica: _Replica) -> None:
        t, timeout_s = self.now, self.settings.timeout_ms / 1000
        batch: list[tuple[float, int]] = []
        while replica.queue and len(batch) < self.service.max_batch_size:
            arrived_s, i = replica.queue.popleft()
            if t - arrived_s > timeout_s:
                self.dropped_timeout += 1
                self._leave(arrived_s, t)
            else:
                batch.append((arrived_s, i))
        if not batch:
            if replica.draining and replica.stop_s is None:
                self._stop(replica, t)
            return
        took = float(self.service.batch_s[len(batch) - 1])
        if self.z is not None:
            took *= self.service.cpu_factor_at(self._rate_per_replica(len(self._up())))
        took += replica.debt_s
        replica.debt_s = 0.0
        self.busy_s += took
        replica.running = batch
        self.push(t + took, _DONE, replica.index)

    def _done(self, index: int) -> None:
        replica, t = self.replicas[index], self.now
        endpoints = len(self.trace.endpoints)
        for arrived_s, i in replica.running:
            self.latency_s[i] = t - arrived_s + self.outside_s[i]
            self.done_s[i] = t
            self._leave(arrived_s, t)
            key, endpoint = int(self.trace.key_ids[i]), int(self.trace.endpoint_ids[i])
            if key >= 0 and self.ttl_s[endpoint] > 0:
                self.expiry[key * endpoints + endpoint] = t + self.ttl_s[endpoint]
        replica.running = []
        self._start_batch(replica)

    def _ready(self, index: int, t: float) -> None:
        replica = self.replicas[index]
        if replica.stop_s is not None:
            return  # cancelled while it started
        replica.ready_s = t
        self._count_ready(t, +1)
        while self.pending:
            arrived_s, i = self.pending.popleft()
            up = self._up()
            self._assign(min(up, key=lambda r: r.outstanding), arrived_s, i)

    def _tick(self) -> None:
        t, s = self.now, self.settings
        assert self.autoscaler is not None
        ready_area = self.ready_area + self.ready_count * (t - self.ready_change_s)
        self.snapshots.append((t, self.busy_s, ready_area))
        while self.snapshots[0][0] < t - s.window_s:
            self.snapshots.popleft()
        first_t, first_busy, _ = self.snapshots[0]
        span = t - first_t if t > first_t else s.tick_s
        target = self._target()
        load = (self.busy_s - first_busy) / span  # replicas' worth of work
        if target > 0:
            utilization = min(load / target, 1.0)
        else:
            utilization = 1.0 if self.pending else 0.0
        wanted = self.autoscaler.decide(t, target, utilization)
        if wanted is not None and wanted != target:
            if wanted > target:
                self._add(wanted - target, cold=False)
            else:
                self._remove(target - wanted)
            self.events.append((t, wanted, "up" if wanted > target else "down"))
        self.push(t + s.tick_s, _TICK, 0)

    # --- the fleet --------------------------------------------------------------------------
    def _new_replica(self, *, cold: bool) -> _Replica:
        replica = _Replica(index=len(self.replicas), asked_s=self.now, cold=cold)
        self.replicas.append(replica)
        self.live.append(replica)
        return replica

    def _up(self) -> list[_Replica]:
        return [r for r in self.live if r.ready_s is not None and not r.draining]

    def _target(self) -> int:
        return sum(1 for r in self.live if not r.draining)

    def _add(self, count: int, *, cold: bool) -> None:
        for _ in range(count):
            replica = self._new_replica(cold=cold)
            self.push(self.now + self.service.startup_s, _READY, replica.index)
        if cold:
            self.cold_starts += count
            self.events.append((self.now, self._target(), "cold"))
        self._count_billed()

    def _remove(self, count: int) -> None:
        starting = [r for r in self.live if r.ready_s is None]
        for replica in reversed(starting[-count:]):
            self._stop(replica, self.now)
            count -= 1
        for replica in sorted(self._up(), key=lambda r: r.outstanding)[:count]:
            replica.draining = True
            self._count_ready(self.now, -1)
            if not replica.running:
                self._stop(replica, self.now)

    def _stop(self, replica: _Replica, t: float) -> None:
        if replica.ready_s is not None and not replica.draining:
            self._count_ready(t, -1)
        replica.stop_s = t
        self.live.remove(replica)
        self._count_billed()

    def _count_ready(self, t: float, delta: int) -> None:
        self.ready_area += self.ready_count * (t - self.ready_change_s)
        self.ready_count += delta
        self.ready_change_s = t
        self._count_billed()

    def _count_billed(self) -> None:
        self.changes.append((self.now, len(self.live), self.ready_count))

    # --- Little's law -----------------------------------------------------------------------
    def _enter(self, t: float) -> None:
        self.area += self.in_system * (t - self.last_change_s)
        self.last_change_s = t
        self.in_system += 1

    def _leave(self, arrived_s: float, t: float) -> None:
        self.area += self.in_system * (t - self.last_change_s)
        self.last_change_s = t
        self.in_system -= 1
        self.sojourn_s += t - arrived_s
        self.departures += 1

    def _result(self) -> SimResult:
        end_s = max(self.now, self.trace.duration_s)
        self.now = end_s
        for replica in list(self.live):
            self._stop(replica, end_s)
        billed_s = sum(r.stop_s - r.asked_s for r in self.replicas if r.stop_s is not None)
        cold_s = sum(_starting_s(r) for r in self.replicas if r.cold)
        startup_s = sum(_starting_s(r) for r in self.replicas if not r.cold)
        series = time_series(
            self.trace.t_s, end_s, self.settings.bins, self.changes, self.done_s, self.latency_s
        )
        return summarize(
            label=self.fleet.label,
            settings_slo_ms=self.settings.slo_ms,
            usd_per_hour=self.settings.replica_usd_per_hour,
            duration_s=end_s,
            latency_s=self.latency_s,
            hits=int(self.hit.sum()),
            dropped_full=self.dropped_full,
            dropped_timeout=self.dropped_timeout,
            billed_s=billed_s,
            ready_s=sum(
                r.stop_s - r.ready_s
                for r in self.replicas
                if r.ready_s is not None and r.stop_s is not None
            ),
            busy_s=self.busy_s,
            cold_s=cold_s,
            startup_s=startup_s,
            events=tuple(self.events),
            cold_starts=self.cold_starts,
            max_replicas=max(billed for _, billed, _ in self.changes),
            little=(self.area, self.sojourn_s, self.departures),
            series=series,
            past_curve=(self.past_curve, self.peak_rate_per_s),
        )


def _starting_s(replica: _Replica) -> float:
    assert replica.stop_s is not None
    up = replica.ready_s if replica.ready_s is not None else replica.stop_s
    return min(up, replica.stop_s) - replica.asked_s


def simulate(
    trace: Trace,
    service: ServiceModel,
    fleet: Fleet,
    settings: Settings,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Run ``trace`` through ``fleet``; ``on_progress(arrivals done)`` every 10,000."""
    return _Simulation(trace, service, fleet, settings, on_progress).run()


__all__ = ["Fleet", "Settings", "simulate"]
