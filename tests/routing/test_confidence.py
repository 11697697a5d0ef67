"""Thresholds chosen with a stated confidence: the bound is exact where it can be computed
exactly, tightens with more items, the sequence stops at the first failure, and, over many
random calibration draws of real models on a bundled data set, the served drop passes the limit
in at most about 1 - confidence of them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from frugal.routing.confidence import Target, choose, lower, strictest_first, upper
from frugal.routing.sweep import Outcome, TierRun, grid, simulate


@pytest.mark.parametrize(("n", "alpha"), [(20, 0.05), (200, 0.05), (400, 0.1)])
def test_clopper_pearson_covers_every_rate(n: int, alpha: float) -> None:
    """For each true rate p, the chance (exact, over the binomial) that the bound falls below
    p is at most alpha: what 'with confidence 1 - alpha' means."""
    ks = np.arange(n + 1)
    uppers = np.array([upper(int(k), n, alpha) for k in ks])
    lowers = np.array([lower(int(k), n, alpha) for k in ks])
    for p in np.linspace(0.001, 0.999, 97):
        pmf = binom.pmf(ks, n, p)
        assert pmf[uppers < p].sum() <= alpha + 1e-9
        assert pmf[lowers > p].sum() <= alpha + 1e-9
    assert upper(0, n, alpha) == pytest.approx(1 - alpha ** (1 / n))


def outcome(
    thresholds: tuple[float, ...], harmed: int, helped: int, items: int, usd: float
) -> Outcome:
    return Outcome(thresholds, 0.9, usd, 0.5, (0.5, 0.5), items=items, harmed=harmed, helped=helped)


def test_more_items_at_the_same_rates_tighten_the_bound() -> None:
    target = Target("max_drop", 0.01, 0.95)
    few, many = outcome((0.8,), 2, 0, 400, 1.0), outcome((0.8,), 20, 0, 4000, 1.0)
    assert few.drop == many.drop == 0.005
    assert target.bound(many) < target.bound(few)
    assert not target.holds(few) and target.holds(many)
    needed = target.items_needed(few)
    assert needed is not None and 400 < needed <= 4000
    # At the same rate (1 in 200), just past the estimate passes and half of it does not.
    up, down = -(-needed // 200) * 200, needed // 2 // 200 * 200
    assert target.holds(outcome((0.8,), up // 200, 0, up, 1.0))
    assert not target.holds(outcome((0.8,), down // 200, 0, down, 1.0))
    # A point estimate past the limit: no amount of data makes it safe.
    assert target.items_needed(outcome((0.5,), 30, 0, 1000, 1.0)) is None


def test_help_counts_against_harm() -> None:
    target = Target("max_drop", 0.01, 0.9)
    assert target.bound(outcome((0.5,), 10, 8, 1000, 1.0)) < target.bound(
        outcome((0.5,), 10, 0, 1000, 1.0)
    )


def test_the_sequence_stops_at_the_first_failure() -> None:
    """Strict to loose: 0.9 passes, 0.7 fails, so 0.5 (cheaper, and lucky on these items) is
    never taken: taking it would be choosing after looking, which the bound does not cover."""
    points = [
        outcome((0.9,), 0, 0, 2000, 3.0),
        outcome((0.7,), 30, 0, 2000, 2.0),
        outcome((0.5,), 0, 0, 2000, 1.0),
    ]
    assert [p.thresholds for p in strictest_first(points, [">="])] == [(0.9,), (0.7,), (0.5,)]
    choice = choose(points, [">="], Target("max_drop", 0.01, 0.95))
    assert choice.chosen is not None and choice.chosen.thresholds == (0.9,)
    assert choice.stopped_at is not None and choice.stopped_at.thresholds == (0.7,)
    point = choose(points, [">="], Target("max_drop", 0.01, 0))
    assert point.chosen is not None and point.chosen.thresholds == (0.5,)
    # "<=" gates are strict at their low end.
    flipped = [outcome((1 - p.thresholds[0],), p.harmed, 0, 2000, p.usd_per_1k) for p in points]
    assert choose(flipped, ["<="], Target("max_drop", 0.01, 0.95)).chosen == flipped[0]


@pytest.fixture(scope="module")
def digits_tiers() -> tuple[TierRun, TierRun]:
    """Logistic regression -> RBF SVC on digits, trained on 500 images; the tiers' answers on
    the other 1,297 are the pool that calibration draws from."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, pool = order[:500], order[500:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        small = LogisticRegression(max_iter=200).fit(x[train], y[train])
    large = SVC(gamma=0.001).fit(x[train], y[train])
    proba = small.predict_proba(x[pool])
    n = len(pool)
    nothing = np.zeros(n, dtype=bool)
    return (
        TierRun(
            "small",
            ">=",
            proba.max(axis=1),
            proba.argmax(axis=1) == y[pool],
            nothing,
            np.full(n, 1e-6),
        ),
        TierRun(
            "large",
            "",
            np.full(n, np.nan),
            large.predict(x[pool]) == y[pool],
            nothing,
            np.full(n, 1e-5),
        ),
    )


def served_drops(tiers: tuple[TierRun, TierRun], confidence: float, draws: int) -> list[float]:
    """Per random draw: calibrate on 400 items, serve the rest; the served drop (nan: nothing
    chosen, so the cascade is not served)."""
    n = len(tiers[0].correct)
    drops = []
    for seed in range(draws):
        rows = np.random.default_rng(seed).permutation(n)
        calib, served = rows[:400], rows[400:]
        points = [simulate(tiers, t, calib) for t in grid(tiers, calib)]
        chosen = choose(points, [">="], Target("max_drop", 0.01, confidence)).chosen
        drops.append(np.nan if chosen is None else simulate(tiers, chosen.thresholds, served).drop)
    return drops


def test_served_drop_passes_the_limit_in_at_most_one_minus_confidence_of_draws(
    digits_tiers: tuple[TierRun, TierRun],
) -> None:
    draws = 150
    sure = np.array(served_drops(digits_tiers, 0.9, draws))
    point = np.array(served_drops(digits_tiers, 0, draws))
    over_sure = np.mean(sure > 0.01)
    # 1 - confidence, plus three standard errors of a share measured on 150 draws.
    assert over_sure <= 0.1 + 3 * np.sqrt(0.1 * 0.9 / draws)
    # The point estimate lands on the limit: on new items it passes it far more often.
    assert np.mean(point > 0.01) > over_sure
    # And the careful choice still chose something, and something cheaper than large alone.
    assert np.isfinite(sure).mean() > 0.5
