"""A tier's cost per item at the batch size it will really see, for ``calibrate --arrival-batch``.

Pricing every tier at full batches hides what a cascade does to its later tiers: they get only
the escalated items, so their batches are small, and a model whose fixed cost per call dominates
(nearest neighbours, anything with Python overhead per call) costs many times more per item at
batch 1 than at batch 64. Here each tier is timed at a few batch sizes (powers of two up to the
largest it can see: N or its ``max_batch_size``), and tier k is priced at a batch of
N x (share of items reaching tier k) items, at least 1 and at most that largest size, where N is
the first tier's typical batch in production (``frugal report``'s mean batch). A batch's busy
time is interpolated linearly between the profiled sizes; the size is not rounded, so the price
moves smoothly with the share (a rounded size makes a slightly higher share look cheaper).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PROFILE_REPEATS = 7  # timed batches per size; the median is kept (a shared machine is noisy)


@dataclass(frozen=True, slots=True)
class BatchProfile:
    """One tier's measured busy seconds per batch at a few sizes; linear in between."""

    model: str
    sizes: tuple[int, ...]  # ascending, starting at 1
    busy_s: tuple[float, ...]  # median busy seconds of one batch of each size, non-decreasing

    def busy_at(self, size: float) -> float:
        return float(np.interp(size, self.sizes, self.busy_s))

    def busy_per_item(self, size: float) -> float:
        return self.busy_at(size) / max(1, size)

    def to_json(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "busy_s": list(self.busy_s),
            "busy_s_per_item": [b / s for s, b in zip(self.sizes, self.busy_s, strict=True)],
        }


def profile_sizes(largest: int) -> list[int]:
    """1, 2, 4, ... up to ``largest``, and ``largest`` itself."""
    sizes = [1]
    while sizes[-1] * 2 < largest:
        sizes.append(sizes[-1] * 2)
    if largest > 1:
        sizes.append(largest)
    return sizes


def profile_batches(
    model: str,
    predict: Callable[[list[Any]], Any],
    items: Sequence[Any],
    largest: int,
    *,
    repeats: int = PROFILE_REPEATS,
) -> BatchProfile:
    """Time ``predict`` on batches of each profiled size, cycling through ``items``.

    The sizes take turns (one batch of each, ``repeats`` rounds) so a burst of load from a
    neighbour on a shared machine lands on every size alike, not on one.
    """
    sizes = profile_sizes(largest)
    timings: list[list[float]] = [[] for _ in sizes]
    start = 0
    for round_ in range(repeats + 1):
        for i, size in enumerate(sizes):
            batch = [items[(start + j) % len(items)] for j in range(size)]
            start += size
            t0 = time.perf_counter()
            predict(batch)
            if round_:  # round 0 warms up: a size's first call may pay one-off allocations
                timings[i].append(time.perf_counter() - t0)
    busy = [statistics.median(t) for t in timings]
    # A bigger batch never takes less time; on a noisy machine a median can say otherwise, and
    # then escalating more items would look cheaper. Keep the running maximum.
    busy = list(itertools.accumulate(busy, max))
    return BatchProfile(model, tuple(sizes), tuple(busy))


def tier_batch_size(
    arrival_batch: int, share: float, batch_usd: tuple[tuple[int, ...], tuple[float, ...]]
) -> float:
    """The batch a tier sees when ``share`` of the first tier's batches of N items reach it."""
    return min(float(batch_usd[0][-1]), max(1.0, arrival_batch * share))


def batch_usd(profile: BatchProfile, pricer: Any) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(sizes, $ of one batch of each size), priced as the server prices a batch's busy time."""
    return profile.sizes, tuple(pricer.batch_cost_usd(b) for b in profile.busy_s)


__all__ = [
    "PROFILE_REPEATS",
    "BatchProfile",
    "batch_usd",
    "profile_batches",
    "profile_sizes",
    "tier_batch_size",
]
