"""Fallback: try an endpoint's upstream models in order until one answers.

For LLM upstreams, where an outage or a timeout of one provider should not fail the request
while another can answer. Unlike a cascade no answer is judged: the first that arrives is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from frugal.errors import UpstreamFailed

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FallbackResult(Generic[T]):
    """What the model that answered returned, and the route for the ledger."""

    model: str
    value: T
    tried: list[str]  # every model tried, in order; failed ones end in "!"

    @property
    def route(self) -> str:
        """``a:1!>b:1``: ``a`` failed, ``b`` answered; empty when the first model answered."""
        return ">".join(self.tried) if len(self.tried) > 1 else ""


async def first_answer(
    models: Sequence[str], call: Callable[[str], Awaitable[T]]
) -> FallbackResult[T]:
    """``call(model)`` for each model in turn; an UpstreamFailed moves on to the next.

    Raises the last model's error when every model failed. Any other error (the caller's own
    bad request) is raised at once: the next model would refuse it too.
    """
    tried: list[str] = []
    for index, model in enumerate(models):
        try:
            value = await call(model)
        except UpstreamFailed:
            tried.append(f"{model}!")
            if index == len(models) - 1:
                raise
            continue
        tried.append(model)
        return FallbackResult(model, value, tried)
    raise ValueError("first_answer needs at least one model")


__all__ = ["FallbackResult", "first_answer"]
