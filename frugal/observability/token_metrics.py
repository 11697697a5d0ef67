"""LLM tokens on ``/metrics``: input and output apart, by endpoint and API key.

Tokens are what an upstream LLM bills, so a key that spends is visible before its dollars add
up. The ``key`` label is the key's configured name (never its secret), so it is bounded by the
key store; requests without auth carry ``-``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

NO_KEY = "-"


class TokenMetrics:
    """Counts the tokens of every LLM call booked; called on the event loop, once a request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "frugal_llm_tokens", "Tokens of LLM calls (as the upstream reported them, or "
            "estimated where it did not), input (prompt) and output (completion) apart.",
            ["endpoint", "key", "direction"], registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe_tokens(self, endpoint: str, key: str, *, input: int, output: int) -> None:
        """``input``/``output``: the prompt's and the completion's tokens of one request."""
        series = (endpoint, key or NO_KEY)
        children = self._children.get(series)
        if children is None:  # .labels() looks up and locks each time: resolve once per series
            children = self._children[series] = (
                self.tokens.labels(*series, "input"),
                self.tokens.labels(*series, "output"),
            )
        if input:
            children[0].inc(input)
        if output:
            children[1].inc(output)


__all__ = ["NO_KEY", "TokenMetrics"]
