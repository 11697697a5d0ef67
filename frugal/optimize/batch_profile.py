"""Measure a tier's busy time per batch size, for ``calibrate --arrival-batch``.

How the profile prices a cascade's later tiers at the small batches they really see is
``frugal.routing.batch_costs``; this module only times the model and prices the timings.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence

from frugal.accounting.prices import Pricer
from frugal.routing.batch_costs import BatchProfile
from frugal.types import Item

PROFILE_REPEATS = 7  # timed batches per size; the median is kept (a shared machine is noisy)


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
    predict: Callable[[list[Item]], object],
    items: Sequence[Item],
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


def batch_usd(profile: BatchProfile, pricer: Pricer) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(sizes, $ of one batch of each size), priced as the server prices a batch's busy time."""
    return profile.sizes, tuple(pricer.batch_cost_usd(b) for b in profile.busy_s)


__all__ = ["PROFILE_REPEATS", "batch_usd", "profile_batches", "profile_sizes"]
