"""The plain route: every item goes to one model version."""

from __future__ import annotations

from frugal.routing.base import CallModel, RoutedResult, RouteRequest


class SingleModelRouter:
    def __init__(self, model: str) -> None:
        self.model = model
        self.models: tuple[str, ...] = (model,)

    async def route(self, request: RouteRequest, call: CallModel) -> RoutedResult:
        outcomes = await call(self.model, request.items, request.deadline)
        return RoutedResult(outcomes)
