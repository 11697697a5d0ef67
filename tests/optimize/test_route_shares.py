"""Reading a cascade's tier shares: the ledger's `route` values and a calibration's answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.optimize.route_shares import parse_cascade, reach_of

TIERS = ("small:1", "medium:2", "large:1")


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=3))
def test_route_values_round_trip(stopped: list[int]) -> None:
    """A route written as the cascade router writes it parses back to the same counts."""
    route = ">".join(f"{tier}*{n}" for tier, n in zip(TIERS, stopped, strict=False))
    assert parse_cascade(route, TIERS) == stopped + [0] * (len(TIERS) - len(stopped))


@pytest.mark.parametrize(
    "route",
    [
        "rule:busy",  # a rule answered with one model
        "rule:gold>large:1*4",  # a rule started the cascade at a later tier
        "small:1!>large:1",  # a fallback list
        "large:1*3",  # other tiers (an older config)
        "small:1*2>large:1*1",  # skips the middle tier: not this cascade
        "small:1*1>medium:2*1>large:1*1>extra:1*1",  # more tiers than the cascade
        "small:1*x",
    ],
)
def test_other_routes_are_not_this_cascade(route: str) -> None:
    """Routes of rules, fallbacks or other tiers give None, so they are not counted."""
    assert parse_cascade(route, TIERS) is None


def test_reach_is_what_was_answered_at_or_after_each_tier() -> None:
    """Answered 70% / 20% / 10%: every item reaches tier 1, 30% tier 2, 10% tier 3."""
    assert reach_of([0.7, 0.2, 0.1]) == pytest.approx((1.0, 0.3, 0.1))
    assert reach_of([7, 3]) == pytest.approx((1.0, 0.3))
