"""Token limits of LLM endpoints: max_tokens clamped or set, old messages trimmed to fit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frugal.config import LLMBudgetConfig
from frugal.errors import InvalidInput
from frugal.routing import apply_budget, count_tokens


def msg(role: str, chars: int, tag: str = "") -> dict[str, Any]:
    return {"role": role, "content": (tag + "x" * chars)[:chars]}


def test_max_tokens_is_clamped_or_set() -> None:
    budget = LLMBudgetConfig(max_tokens=50)
    base = {"messages": [msg("user", 4)]}
    assert apply_budget(base, budget)["max_tokens"] == 50
    assert apply_budget(base | {"max_tokens": 10}, budget)["max_tokens"] == 10
    assert apply_budget(base | {"max_tokens": 999}, budget)["max_tokens"] == 50
    clamped = apply_budget(base | {"max_completion_tokens": 999}, budget)
    assert clamped["max_completion_tokens"] == 50 and "max_tokens" not in clamped
    with pytest.raises(InvalidInput) as bad:
        apply_budget(base | {"max_tokens": "lots"}, budget)
    assert bad.value.field == "max_tokens"


def test_trimming_keeps_system_messages_and_the_most_recent_that_fit() -> None:
    """40 tokens: the system (10) + the last two (10 each) fit; the older ones go."""
    messages = [msg("system", 40, "S"), msg("user", 40, "A"), msg("assistant", 40, "B"),
                msg("user", 40, "C"), msg("assistant", 40, "D"), msg("user", 40, "E")]  # fmt: skip
    kept = apply_budget({"messages": messages}, LLMBudgetConfig(max_prompt_tokens=30))
    assert [m["content"][0] for m in kept["messages"]] == ["S", "D", "E"]
    assert messages[1]["content"][0] == "A"  # the request itself is not changed


def test_a_prompt_that_cannot_fit_is_refused_with_the_field() -> None:
    with pytest.raises(InvalidInput) as system:
        apply_budget({"messages": [msg("system", 400), msg("user", 4)]},
                     LLMBudgetConfig(max_prompt_tokens=10))  # fmt: skip
    assert system.value.field == "messages" and system.value.hint
    with pytest.raises(InvalidInput) as last:
        apply_budget({"messages": [msg("user", 4), msg("user", 400)]},
                     LLMBudgetConfig(max_prompt_tokens=10))  # fmt: skip
    assert last.value.field == "messages[1]"


@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=12),
    limit=st.integers(50, 400),
)
def test_trimmed_prompts_fit_and_keep_a_suffix(sizes: list[int], limit: int) -> None:
    """Whatever is kept fits the limit and is the newest messages, in order."""
    messages = [msg("user", n, str(i)) | {"i": i} for i, n in enumerate(sizes)]
    try:
        kept = apply_budget({"messages": messages}, LLMBudgetConfig(max_prompt_tokens=limit))
    except InvalidInput:
        assert count_tokens("x" * sizes[-1]) > limit
        return
    indexes = [m["i"] for m in kept["messages"]]
    assert indexes == list(range(len(sizes) - len(indexes), len(sizes)))
    assert sum(count_tokens(m["content"]) for m in kept["messages"]) <= limit
