"""The policy controller's decisions as pure functions: readings and the current value in, a
move (the new value and why) or ``None`` (hold) out. No clock, no I/O, no state of their own:
serving/controller.py reads the server, calls these, and applies what they return.

Every decision has a band where it holds (hysteresis), moves one bounded step at a time, and
never returns a value outside the configured bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugal.config import BatchingControl, CacheControl, DegradeControl


@dataclass(frozen=True, slots=True)
class Move:
    """A knob's new value and the reason, in words an operator reads in the log."""

    new: float
    reason: str


@dataclass(frozen=True, slots=True)
class LatencyReading:
    """A model's item latencies (queue wait + batch time) since its knob last moved."""

    p99_ms: float
    samples: int


@dataclass(frozen=True, slots=True)
class CacheReading:
    """An endpoint's cache lookups since its TTL last moved."""

    lookups: int
    hits: int
    stored_hits: int  # hits answered from the store (not shared in-flight computations)
    hit_age_s: float  # their summed age

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def mean_hit_age_s(self) -> float | None:
        return self.hit_age_s / self.stored_hits if self.stored_hits else None


def decide_max_wait(
    current_ms: float, reading: LatencyReading, control: BatchingControl, min_samples: int
) -> Move | None:
    """Over the SLO: a shorter wait (items leave the queue sooner). Well under it, with room
    for the longer wait: a longer one (fuller batches, cheaper items). Between: hold."""
    if reading.samples < min_samples:
        return None
    low, high = control.max_wait_ms.min, control.max_wait_ms.max
    slo = control.slo_p99_ms
    if reading.p99_ms > slo:
        new = max(low, current_ms / control.step)
        if new >= current_ms:
            return None  # already at the bound
        return Move(new, f"p99 {reading.p99_ms:.1f} ms is over the SLO {slo:g} ms")
    if reading.p99_ms < control.raise_below * slo:
        new = min(high, current_ms * control.step)
        if new <= current_ms:
            return None
        # The longer wait adds at most its difference to an item's latency: never step out.
        if reading.p99_ms + (new - current_ms) > slo:
            return None
        return Move(new, f"p99 {reading.p99_ms:.1f} ms is under {control.raise_below:g} x "
                         f"the SLO {slo:g} ms: room for fuller batches")  # fmt: skip
    return None


def decide_ttl(
    current_s: float, reading: CacheReading, control: CacheControl, min_samples: int
) -> Move | None:
    """Answers served older than the staleness budget, or rarely reused: a shorter TTL.
    Often reused, with age to spare: a longer one. Between: hold."""
    if reading.lookups < min_samples:
        return None
    low, high = control.ttl_s.min, control.ttl_s.max
    budget = control.staleness_budget_s
    age = reading.mean_hit_age_s
    ratio = reading.hit_ratio
    shorter = max(low, current_s / control.step)
    if age is not None and age > budget:
        if shorter >= current_s:
            return None
        return Move(shorter, f"hits average {age:.1f} s old, over the staleness budget "
                             f"{budget:g} s")  # fmt: skip
    if ratio < control.lower_below:
        if shorter >= current_s:
            return None
        return Move(shorter, f"hit ratio {ratio:.2f} is under {control.lower_below:g}: "
                             "entries are rarely reused")  # fmt: skip
    if ratio >= control.raise_above:
        longer = min(high, current_s * control.step)
        if longer <= current_s:
            return None
        # Ages grow with the TTL; a hit's age scales by about the step at most.
        if age is not None and age * longer / current_s > budget:
            return None
        return Move(longer, f"hit ratio {ratio:.2f} is at or over {control.raise_above:g}: "
                            "answers are reused, keep them longer")  # fmt: skip
    return None


def decide_degrade(
    on: bool, signal: float, on_for_s: float, control: DegradeControl
) -> Move | None:
    """Off: on once ``signal`` reaches ``on_above``. On: off once it is at or under
    ``off_below`` and the rule has been on ``min_on_s``. In the band between: as it is."""
    name = control.signal
    if not on and signal >= control.on_above:
        return Move(1.0, f"{name} {signal:g} reached {control.on_above:g}")
    if on and signal <= control.off_below and on_for_s >= control.min_on_s:
        return Move(0.0, f"{name} {signal:g} is at or under {control.off_below:g}")
    return None


__all__ = [
    "CacheReading",
    "LatencyReading",
    "Move",
    "decide_degrade",
    "decide_max_wait",
    "decide_ttl",
]
