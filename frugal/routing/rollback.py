"""Automatic rollback: a canary whose error rate or p99 beats the baseline's by a margin is cut.

Each version of a split keeps its requests of the last ``window_s`` seconds (failed or not,
latency). Once the baseline (the version with the largest weight) and a canary each have
``min_requests`` in the window, the canary is judged: error rate above the baseline's by more
than ``error_rate_margin`` (absolute), or p99 latency above it by more than ``p99_margin_ms``.
Judging runs at most every ``JUDGE_INTERVAL_S``; a p99 is a sort of at most a window of floats.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from frugal.config import RollbackConfig

JUDGE_INTERVAL_S = 0.25


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    error_rate: float
    p99_ms: float

    def to_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "error_rate": round(self.error_rate, 4),
                "p99_ms": round(self.p99_ms, 2)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a canary is rolled back, with both versions' numbers for the event."""

    canary: str
    baseline: str
    reason: str
    canary_stats: WindowStats
    baseline_stats: WindowStats


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


class CanaryWatch:
    def __init__(self, config: RollbackConfig) -> None:
        self.config = config
        self._samples: dict[str, deque[tuple[float, bool, float]]] = {}
        self._judged_at = 0.0

    def observe(
        self, version: str, failed: bool, latency_s: float, now: float | None = None
    ) -> None:
        now = time.monotonic() if now is None else now
        self._samples.setdefault(version, deque()).append((now, failed, latency_s))

    def forget(self, version: str) -> None:
        """A version rolled back or re-weighted starts a fresh window."""
        self._samples.pop(version, None)

    def stats(self, version: str, now: float | None = None) -> WindowStats:
        now = time.monotonic() if now is None else now
        samples = self._samples.get(version, deque())
        while samples and samples[0][0] < now - self.config.window_s:
            samples.popleft()
        if not samples:
            return WindowStats(0, 0.0, 0.0)
        errors = sum(failed for _, failed, _ in samples)
        latencies = [latency for _, _, latency in samples]
        return WindowStats(len(samples), errors / len(samples), 1000 * _p99(latencies))

    def judge(self, weights: dict[str, float], now: float | None = None) -> list[Verdict]:
        """The canaries to roll back now (none until both sides have enough requests)."""
        now = time.monotonic() if now is None else now
        if now - self._judged_at < JUDGE_INTERVAL_S:
            return []
        self._judged_at = now
        baseline = max(weights, key=lambda v: weights[v])
        base = self.stats(baseline, now)
        if base.requests < self.config.min_requests:
            return []
        verdicts = []
        for canary, weight in weights.items():
            if canary == baseline or weight <= 0:
                continue
            mine = self.stats(canary, now)
            if mine.requests < self.config.min_requests:
                continue
            reason = self._reason(mine, base)
            if reason:
                verdicts.append(Verdict(canary, baseline, reason, mine, base))
        return verdicts

    def _reason(self, canary: WindowStats, baseline: WindowStats) -> str:
        margin = self.config.error_rate_margin
        if margin is not None and canary.error_rate - baseline.error_rate > margin:
            mine, theirs = 100 * canary.error_rate, 100 * baseline.error_rate
            return f"error rate {mine:.1f}% vs {theirs:.1f}% (margin {100 * margin:.1f} pt)"
        p99_margin = self.config.p99_margin_ms
        if p99_margin is not None and canary.p99_ms - baseline.p99_ms > p99_margin:
            return (f"p99 {canary.p99_ms:.1f} ms vs {baseline.p99_ms:.1f} ms "
                    f"(margin {p99_margin:g} ms)")  # fmt: skip
        return ""


__all__ = ["CanaryWatch", "Verdict", "WindowStats"]
