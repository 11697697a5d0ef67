"""Builds each endpoint's Router from its config: one model, a cascade or a split, behind its
selection rules. The engine calls it once per endpoint at start-up."""

from __future__ import annotations

from collections.abc import Sequence

from frugal.config import EndpointConfig, FrugalConfig, TierConfig
from frugal.observability import ServingMetrics
from frugal.routing import CascadeRouter, Gate, Router, SingleModelRouter
from frugal.routing.rules import LoadProbe, Rule, RuleRouter
from frugal.serving.route_control import RouteControl


class RouterBuilder:
    def __init__(
        self, config: FrugalConfig, metrics: ServingMetrics, routes: RouteControl, load: LoadProbe
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.routes = routes  # splits register there, for the admin API and rollback
        self.load = load
        # Each endpoint's cascades (its base route's first): the drift check tightens them all.
        self.cascades: dict[str, list[CascadeRouter]] = {}
        self._building = ""

    def key(self, ref: str) -> str:
        found = self.config.find_model(ref)
        assert found is not None  # checked by config validation
        return found.key

    def build(self, endpoint: EndpointConfig, field: str) -> Router:
        self._building = endpoint.name
        keys = [self.key(ref) for ref in endpoint.models]
        route = endpoint.route
        if route is None:
            return SingleModelRouter(keys[0])
        base: Router
        if route.cascade is not None:
            base = self._cascade(route.cascade, keys, f"{field}.cascade")
        elif route.split is not None:
            base = self.routes.add_split(endpoint.name, route, keys)
        else:
            base = SingleModelRouter(keys[0])
        if not route.rules:
            return base
        rules = []
        for i, rule in enumerate(route.rules):
            picked: Router
            if rule.model is not None:
                picked = SingleModelRouter(self.key(rule.model))
            else:
                assert route.cascade is not None and rule.start is not None  # config checked
                start = [t.model for t in route.cascade].index(rule.start)
                picked = self._cascade(route.cascade[start:], keys[start:], f"{field}.cascade")
            load_of = self.key(rule.when.load_of) if rule.when.load_of else keys[-1]
            rules.append(Rule.build(rule, i, picked, load_of))
        return RuleRouter(rules, base, load=self.load, observe=self.metrics.routes.observe_rule)

    def _cascade(self, tiers: Sequence[TierConfig], keys: Sequence[str], field: str) -> Router:
        if len(tiers) == 1:  # a rule that starts a cascade at its last tier
            return SingleModelRouter(keys[0])
        gates = [
            (key, Gate(t.accept, field=f"{field}[{i}].accept") if t.accept else None)
            for i, (key, t) in enumerate(zip(keys, tiers, strict=True))
        ]
        router = CascadeRouter(gates, observe=self.metrics.observe_tier)
        self.cascades.setdefault(self._building, []).append(router)
        return router


__all__ = ["RouterBuilder"]
