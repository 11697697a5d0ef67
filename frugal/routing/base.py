"""The Router seam: which model versions answer a request's items. Routers own no batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from frugal.types import Item, ItemOutcome


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class RouteRequest:
    """What a router may look at: the endpoint, the items and who is asking."""

    endpoint: str
    items: Sequence[Item]
    deadline: float  # monotonic seconds
    user: str | None = None
    tier: str | None = None


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class RoutedResult:
    """One outcome per item, in the request's order (each names the model version that gave it)."""

    outcomes: list[ItemOutcome]
    path: list[str] = field(default_factory=list)  # e.g. cascade tiers tried, for the ledger
    degraded: bool = False  # a rule gave a cheaper answer than the route would have


class CallModel(Protocol):
    """Given to routers by the serving path: sends items through that model's batcher."""

    async def __call__(
        self, model: str, items: Sequence[Item], deadline: float
    ) -> list[ItemOutcome]: ...


class Router(Protocol):
    """Called once per request by the serving path, after admission and the cache."""

    models: tuple[str, ...]  # every model version this route can call (cache keys use them)

    async def route(self, request: RouteRequest, call: CallModel) -> RoutedResult: ...
