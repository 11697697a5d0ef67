"""What the policy controller reads, over a recent window: item latencies per model version (from
each batch the batchers run) and cache lookups per endpoint (from the cache stages' counters).

Bounded memory whatever the load: latencies go into a log-spaced histogram per controller tick
(about 5% wide buckets, so a p99 is read to within 5%, rounded up), and the window keeps one
histogram per tick; caches keep one snapshot of their counters per tick.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from frugal.cache import CacheStage
from frugal.serving.controller_decisions import CacheReading, LatencyReading
from frugal.types import BatchStats

BUCKET_RATIO = 1.05  # each bucket's upper edge is 5% above the one before
SMALLEST_MS = 0.01  # latencies under 10 us all fall in the first bucket
BUCKETS = 420  # up to SMALLEST_MS x 1.05^420, about 8 hours: nothing real is longer
_LOG_RATIO = math.log(BUCKET_RATIO)


def bucket_of(latency_ms: float) -> int:
    if latency_ms <= SMALLEST_MS:
        return 0
    return min(BUCKETS - 1, math.ceil(math.log(latency_ms / SMALLEST_MS) / _LOG_RATIO))


def upper_ms(bucket: int) -> float:
    return SMALLEST_MS * BUCKET_RATIO**bucket


@dataclass(slots=True)
class _Slot:
    closed_at: float  # monotonic: the tick that closed it; its samples came before
    counts: dict[int, int]
    samples: int


class LatencyWindow:
    """One model version's item latencies, a histogram per tick over the last ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._open: dict[int, int] = {}
        self._open_samples = 0
        self._slots: deque[_Slot] = deque()

    def observe(self, latencies_ms: Iterable[float]) -> None:
        for latency_ms in latencies_ms:
            bucket = bucket_of(latency_ms)
            self._open[bucket] = self._open.get(bucket, 0) + 1
            self._open_samples += 1

    def close(self, now: float) -> None:
        """A tick: the samples so far become a slot; slots past the window are forgotten."""
        self._slots.append(_Slot(now, self._open, self._open_samples))
        self._open, self._open_samples = {}, 0
        while self._slots and self._slots[0].closed_at <= now - self.window_s:
            self._slots.popleft()

    def reading(self, since: float) -> LatencyReading:
        """The p99 of the samples in slots closed after ``since`` (a knob's last change)."""
        counts: dict[int, int] = {}
        samples = 0
        for slot in self._slots:
            if slot.closed_at > since:
                samples += slot.samples
                for bucket, count in slot.counts.items():
                    counts[bucket] = counts.get(bucket, 0) + count
        if not samples:
            return LatencyReading(0.0, 0)
        rank = math.ceil(0.99 * samples)
        seen = 0
        for bucket in sorted(counts):
            seen += counts[bucket]
            if seen >= rank:
                return LatencyReading(upper_ms(bucket), samples)
        raise AssertionError("unreachable: the rank is at most the samples counted")


class BatchLatencies:
    """Feeds each model version's window from the batches it runs (the batcher's ``on_batch``)."""

    def __init__(self, models: Iterable[str], window_s: float) -> None:
        self.windows = {model: LatencyWindow(window_s) for model in models}

    def after(self, first: Callable[[BatchStats], None]) -> Callable[[BatchStats], None]:
        """An ``on_batch`` that calls ``first`` (the recorder), then feeds these windows."""

        def both(stats: BatchStats) -> None:
            first(stats)
            self.observe(stats)

        return both

    def observe(self, stats: BatchStats) -> None:
        window = self.windows.get(stats.model)
        if window is None or stats.failed:
            return
        busy_ms = 1000 * stats.busy_s
        window.observe(1000 * queue_s + busy_ms for queue_s in stats.queue_s)


@dataclass(frozen=True, slots=True)
class _Counters:
    at: float  # monotonic
    lookups: int
    hits: int
    stored_hits: int
    hit_age_s: float


class CacheWindow:
    """One endpoint's cache counters, a snapshot per tick over the last ``window_s``."""

    def __init__(self, stage: CacheStage, window_s: float) -> None:
        self.stage = stage
        self.window_s = window_s
        self._snapshots: deque[_Counters] = deque()

    def _now(self, at: float) -> _Counters:
        s = self.stage
        return _Counters(at, s.hits + s.misses, s.hits, s.stored_hits, s.stored_hit_age_s)

    def close(self, now: float) -> None:
        self._snapshots.append(self._now(now))
        # Keep the newest snapshot at or before the window's start: the base of a full window.
        while len(self._snapshots) > 1 and self._snapshots[1].at <= now - self.window_s:
            self._snapshots.popleft()

    def reading(self, since: float) -> CacheReading:
        """Lookups between the first snapshot at or after ``since`` and the latest one."""
        if not self._snapshots:
            return CacheReading(0, 0, 0, 0.0)
        last = self._snapshots[-1]
        base = next((c for c in self._snapshots if c.at >= since), last)
        return CacheReading(
            lookups=last.lookups - base.lookups,
            hits=last.hits - base.hits,
            stored_hits=last.stored_hits - base.stored_hits,
            hit_age_s=last.hit_age_s - base.hit_age_s,
        )


__all__ = ["BatchLatencies", "CacheWindow", "LatencyWindow", "bucket_of", "upper_ms"]
