"""The batch-time fit the batcher's admission reads: from batches seen to a batch of any size."""

from __future__ import annotations

import pytest

from frugal.serving.service_time import ServiceTime


def test_nothing_is_known_before_a_batch() -> None:
    """Before any batch finished the fit knows nothing and prices every batch at 0."""
    fit = ServiceTime()
    assert not fit.known
    assert fit.batch_s(32) == 0.0


def test_one_size_seen_prices_other_sizes_at_the_least_they_can_take() -> None:
    """Batches of one size only: exact there; a larger batch no faster, a smaller one per item."""
    fit = ServiceTime()
    for _ in range(20):
        fit.observe(4, 0.2)
    assert fit.known
    assert fit.batch_s(4) == pytest.approx(0.2)
    assert fit.batch_s(32) == pytest.approx(0.2)
    assert fit.batch_s(1) == pytest.approx(0.05)


def test_varied_sizes_learn_the_fixed_and_the_per_item_cost() -> None:
    """Mixed sizes from a line overhead + per-item x n give back that line."""
    fit = ServiceTime()
    for i in range(40):
        n = 1 + (i % 8) * 4
        fit.observe(n, 0.010 + 0.002 * n)
    assert fit.batch_s(1) == pytest.approx(0.012)
    assert fit.batch_s(64) == pytest.approx(0.138)


def test_recent_batches_outweigh_old_ones() -> None:
    """A model that became twice as slow is priced close to its new time within a few dozen."""
    fit = ServiceTime()
    for _ in range(50):
        fit.observe(8, 0.1)
    for _ in range(60):
        fit.observe(8, 0.2)
    assert 0.19 < fit.batch_s(8) <= 0.2


def test_empty_or_nonsense_batches_are_ignored() -> None:
    """A batch of no items or a negative or NaN duration does not move the fit."""
    fit = ServiceTime()
    fit.observe(0, 1.0)
    fit.observe(3, -1.0)
    fit.observe(3, float("nan"))
    assert not fit.known
