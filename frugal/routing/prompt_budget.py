"""Token limits of an LLM endpoint, applied to a chat request before it goes upstream.

Tokens are counted with a documented approximation, one token per four characters of message
text rounded up: frugal ships no tokenizer for every upstream model (tiktoken would download its
encodings at first use), and the limit is a budget guard, not an exact count. The upstream's
``usage``, not this estimate, is what the ledger charges.
"""

from __future__ import annotations

import math
from typing import Any

from frugal.config import LLMBudgetConfig
from frugal.errors import InvalidInput

MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def count_tokens(text: str) -> int:
    """ceil(characters / 4): about right for English with OpenAI-style BPE tokenizers."""
    return math.ceil(len(text) / 4)


def message_text(message: Any) -> str:
    """The text of a message: its string content, or the text parts of a content list."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )  # fmt: skip
    return ""


def prompt_chars(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    return sum(len(message_text(m)) for m in messages) if isinstance(messages, list) else 0


def apply_budget(body: dict[str, Any], budget: LLMBudgetConfig) -> dict[str, Any]:
    """A copy of ``body`` with max_tokens clamped (or set) and old messages trimmed to fit."""
    out = dict(body)
    if budget.max_tokens is not None:
        present = [f for f in MAX_TOKEN_FIELDS if f in out]
        for name in present:
            value = out[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInput("must be a positive integer", field=name)
            out[name] = min(value, budget.max_tokens)
        if not present:
            out["max_tokens"] = budget.max_tokens
    if budget.max_prompt_tokens is not None:
        out["messages"] = trim_messages(out["messages"], budget.max_prompt_tokens)
    return out


def trim_messages(messages: list[Any], max_prompt_tokens: int) -> list[Any]:
    """Every system message plus the most recent others that fit, in their original order."""
    system = [i for i, m in enumerate(messages) if m.get("role") in ("system", "developer")]
    used = sum(count_tokens(message_text(messages[i])) for i in system)
    if used > max_prompt_tokens:
        raise InvalidInput(
            f"the system messages alone are about {used} tokens, over the endpoint's "
            f"max_prompt_tokens of {max_prompt_tokens}",
            field="messages",
            hint="shorten the system message, or raise endpoints[].llm.max_prompt_tokens",
        )
    kept = set(system)
    for i in reversed(range(len(messages))):
        if i in kept:
            continue
        tokens = count_tokens(message_text(messages[i]))
        if used + tokens > max_prompt_tokens:
            break
        kept.add(i)
        used += tokens
    if not any(i not in system for i in kept):
        raise InvalidInput(
            f"the last message does not fit the endpoint's max_prompt_tokens of "
            f"{max_prompt_tokens} (about {count_tokens(message_text(messages[-1]))} tokens)",
            field=f"messages[{len(messages) - 1}]",
            hint="send a shorter message, or raise endpoints[].llm.max_prompt_tokens",
        )
    return [m for i, m in enumerate(messages) if i in kept]


__all__ = ["apply_budget", "count_tokens", "message_text", "prompt_chars", "trim_messages"]
