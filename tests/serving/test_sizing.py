"""Choosing the next batch of a sized model: least padding, or most items per busy second."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.serving.service_time import RecentLinearFit
from frugal.serving.sizing import choose_window, least_padding_window

sizes_st = st.lists(st.integers(1, 512), min_size=1, max_size=300)


def savings(sizes: list[int], idx: list[int], cost: tuple[float, float]) -> float:
    overhead, per_unit = cost
    padding = len(idx) * max(sizes[i] for i in idx) - sum(sizes[i] for i in idx)
    return (len(idx) - 1) * overhead - per_unit * padding


@settings(max_examples=200, deadline=None)
@given(sizes_st, st.integers(1, 64))
def test_least_padding_window_holds_oldest_and_pads_no_more_than_fifo(
    sizes: list[int], limit: int
) -> None:
    """The window holds the oldest item and `limit` distinct items, and pads no more than FIFO."""
    limit = min(limit, len(sizes))
    chosen = least_padding_window(sizes, limit)
    assert 0 in chosen
    assert len(set(chosen)) == len(chosen) == limit

    def waste(idx: list[int]) -> int:
        return limit * max(sizes[i] for i in idx) - sum(sizes[i] for i in idx)

    assert waste(chosen) <= waste(list(range(limit)))


def subsets_with_oldest(n_items: int, limit: int) -> list[list[int]]:
    return [
        [0, *rest]
        for k in range(min(limit, n_items))
        for rest in itertools.combinations(range(1, n_items), k)
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1, 30), min_size=1, max_size=9),
    st.integers(1, 9),
    st.floats(0.0, 0.05),
    st.floats(1e-5, 1e-2),
)
def test_cost_window_is_the_best_subset_with_the_oldest(
    sizes: list[int], limit: int, overhead: float, per_unit: float
) -> None:
    """No subset holding the oldest item (brute force) saves more, and none saves < 0."""
    cost = (overhead, per_unit)
    chosen = choose_window(sizes, limit, cost)
    assert 0 in chosen and 1 <= len(chosen) <= limit and len(set(chosen)) == len(chosen)
    best = max(savings(sizes, s, cost) for s in subsets_with_oldest(len(sizes), limit))
    assert savings(sizes, chosen, cost) >= best - 1e-12
    assert savings(sizes, chosen, cost) >= -1e-12


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=9), st.integers(1, 8))
def test_least_padding_window_is_the_best_subset_of_its_size(sizes: list[int], limit: int) -> None:
    """No `limit` items holding the oldest (brute force) pad less than the chosen ones."""
    limit = min(limit, len(sizes))
    chosen = least_padding_window(sizes, limit)

    def padding(idx: list[int]) -> int:
        return len(idx) * max(sizes[i] for i in idx) - sum(sizes[i] for i in idx)

    candidates = [s for s in subsets_with_oldest(len(sizes), limit) if len(s) == limit]
    assert len(chosen) == limit and 0 in chosen
    assert padding(chosen) == min(padding(s) for s in candidates)


def test_zero_overhead_batches_only_equal_sizes() -> None:
    """When a call has no overhead to share, only items of the oldest one's size join it."""
    assert sorted(choose_window([7, 3, 7, 9, 7], 8, (0.0, 0.001))) == [0, 2, 4]


def test_without_a_fit_a_short_queue_goes_whole() -> None:
    """Before the cost is known, every waiting item goes when they fit in one batch."""
    assert choose_window([5, 90, 7], 8, None) == [0, 1, 2]


def test_costly_padding_splits_short_from_long() -> None:
    """When padding costs more than a call's overhead, short and long items do not mix."""
    sizes = [10, 11, 100, 12, 95, 9]
    # savings: the 4 short ones share 3 overheads (60 ms) for 6 units of padding (6 ms)
    chosen = choose_window(sizes, 8, (0.02, 0.001))
    assert sorted(chosen) == [0, 1, 3, 5]


def test_cheap_padding_fills_the_batch() -> None:
    """When a call's overhead dwarfs padding, everything waiting goes together."""
    sizes = [10, 11, 100, 12, 95, 9]
    assert sorted(choose_window(sizes, 8, (1.0, 1e-6))) == list(range(6))


def test_fit_recovers_overhead_and_slope() -> None:
    """The fit recovers overhead and per-unit cost from noisy batches of varied padded size."""
    rng = random.Random(0)
    fit = RecentLinearFit(decay=0.999)
    for _ in range(400):
        padded = rng.randint(10, 2000)
        fit.observe(padded, 0.002 + 1e-5 * padded + rng.gauss(0, 1e-4))
    estimate = fit.estimate()
    assert estimate is not None
    assert estimate[0] == pytest.approx(0.002, abs=3e-4)
    assert estimate[1] == pytest.approx(1e-5, rel=0.05)


def test_fit_needs_batches_and_varied_sizes() -> None:
    """No estimate before min_points, nor when padded sizes never vary."""
    fit = RecentLinearFit(decay=0.98, min_points=8)
    for _ in range(7):
        fit.observe(100, 0.01)
    assert fit.estimate() is None
    for _ in range(50):
        fit.observe(100, 0.01)
    assert fit.estimate() is None
