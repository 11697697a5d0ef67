"""Selection rules: before the route runs, pick a model or a cascade start tier per request.

Rules read three things: the caller's tier (API key, else the ``x-frugal-tier`` header), the
milliseconds left of the request's deadline, and the load of one model (its queued items, or
the wait those items imply at its recent drain rate). They are evaluated in order and the first
that matches decides; none matching leaves the route as configured. A rule marked ``degraded``
is counted as degraded service (ledger column, metric): the caller got a cheaper answer than
the route would have given, because the server was busy or the deadline tight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from frugal.config import RuleConfig, parse_comparison
from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.gates import OPERATORS


@dataclass(frozen=True, slots=True)
class Load:
    """A model's queue right now: items waiting, and the seconds they take to drain."""

    queue_depth: int
    wait_s: float


LoadProbe = Callable[[str], Load]  # model key -> its load
RuleObserver = Callable[[str, str, bool], None]  # (endpoint, rule, degraded)


def _comparison(text: str | None) -> Callable[[float], bool] | None:
    if text is None:
        return None
    op, threshold = parse_comparison(text)
    compare = OPERATORS[op]
    return lambda value: compare(value, threshold)


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: its conditions, and the router it hands the request to."""

    name: str
    router: Router
    degraded: bool
    tiers: tuple[str, ...] | None
    deadline_ms: Callable[[float], bool] | None
    queue_depth: Callable[[float], bool] | None
    wait_ms: Callable[[float], bool] | None
    load_of: str  # model key

    @classmethod
    def build(cls, config: RuleConfig, index: int, router: Router, load_of: str) -> Rule:
        when = config.when
        return cls(
            name=config.name or f"rule{index}",
            router=router,
            degraded=config.degraded,
            tiers=when.tiers,
            deadline_ms=_comparison(when.deadline_ms),
            queue_depth=_comparison(when.queue_depth),
            wait_ms=_comparison(when.wait_ms),
            load_of=load_of,
        )

    def matches(self, request: RouteRequest, load: LoadProbe) -> bool:
        if self.tiers is not None and request.tier not in self.tiers:
            return False
        if self.deadline_ms is not None:
            left_ms = 1000 * (request.deadline - time.monotonic())
            if not self.deadline_ms(left_ms):
                return False
        if self.queue_depth is not None or self.wait_ms is not None:
            now = load(self.load_of)
            if self.queue_depth is not None and not self.queue_depth(now.queue_depth):
                return False
            if self.wait_ms is not None and not self.wait_ms(1000 * now.wait_s):
                return False
        return True


class RuleRouter:
    """The first matching rule's router, else the configured one; the ledger gets the rule."""

    def __init__(
        self,
        rules: Sequence[Rule],
        default: Router,
        *,
        load: LoadProbe,
        observe: RuleObserver | None = None,
    ) -> None:
        self.rules = list(rules)
        self.default = default
        self._load = load
        self._observe = observe
        self._off: set[str] = set()  # rules switched off at run time (the policy controller)
        models = list(default.models)
        for rule in self.rules:
            models += [m for m in rule.router.models if m not in models]
        self.models: tuple[str, ...] = tuple(models)

    def switch(self, rule: str, on: bool) -> None:
        """Turn a rule on or off (by name) while serving; an off rule is never evaluated."""
        if rule not in {r.name for r in self.rules}:
            raise KeyError(rule)
        if on:
            self._off.discard(rule)
        else:
            self._off.add(rule)

    def is_on(self, rule: str) -> bool:
        return rule not in self._off

    async def route(self, request: RouteRequest, call: CallModel) -> RoutedResult:
        for rule in self.rules:
            if rule.name in self._off:
                continue
            if rule.matches(request, self._load):
                if self._observe is not None:
                    self._observe(request.endpoint, rule.name, rule.degraded)
                routed = await rule.router.route(request, call)
                return RoutedResult(
                    routed.outcomes, [f"rule:{rule.name}", *routed.path],
                    degraded=rule.degraded or routed.degraded,
                )  # fmt: skip
        return await self.default.route(request, call)


__all__ = ["Load", "LoadProbe", "Rule", "RuleObserver", "RuleRouter"]
