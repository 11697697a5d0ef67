"""The tier_costs column reads back exactly what was written, and refuses what is malformed."""

from __future__ import annotations

import pytest
from hypothesis import given

from frugal.accounting.tier_costs import format_tier_costs, parse_tier_costs
from tests.strategies import tier_cost_lists


@given(tier_cost_lists)
def test_tier_costs_round_trip_bit_for_bit(costs: list[tuple[str, float]]) -> None:
    """Every version and every float comes back exactly, in tier order."""
    assert parse_tier_costs(format_tier_costs(costs)) == costs


def test_the_documented_form() -> None:
    """The column reads ``name:version=usd`` joined by ``;``; empty means no tiers."""
    text = format_tier_costs([("small:1", 1.234e-07), ("large:2", 4.5e-06)])
    assert text == "small:1=1.234e-07;large:2=4.5e-06"
    assert parse_tier_costs("") == []


@pytest.mark.parametrize(
    "text",
    [
        "small:1",
        "small=1e-7",
        ":1=1e-7",
        "small:=1e-7",
        "small:1=abc",
        "a:1=1;",
        "a:1=nan",
        "a:1:2=1e-7",
    ],
)
def test_malformed_values_are_value_errors(text: str) -> None:
    """A part that is not name:version=finite dollars is a ValueError, never a silent zero."""
    with pytest.raises(ValueError):
        parse_tier_costs(text)


@pytest.mark.parametrize("key", ["small", "small:", ":1", "a;b:1", "a=b:1", "a:1:2"])
def test_keys_that_would_not_read_back_are_refused(key: str) -> None:
    """Writing a key that is not name:version (or holds ; or =) is a ValueError."""
    with pytest.raises(ValueError, match="not a model name:version"):
        format_tier_costs([(key, 1e-7)])
