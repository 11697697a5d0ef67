"""frugal.yaml's `controller`: the knobs the server may turn by itself while it runs, and the
bounds it must keep them in (docs/controller.md).

Absent, nothing moves: every knob stays as the rest of frugal.yaml sets it. Each entry names
what it turns (a model's ``max_wait_ms``, an endpoint's cache ``ttl_s``, one selection rule of
an endpoint) and the bounds; the references are checked against the models and endpoints
declared (``check_controller``, called by the root section), so a typo stops the start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from frugal.config._base import _FieldError, _Section

if TYPE_CHECKING:
    from frugal.config.root import FrugalConfig


class Bounds(_Section):
    """The range a knob is kept in, both ends included (in the knob's unit)."""

    min: Annotated[float, Field(gt=0)]  # a batcher's wait and a cache's TTL are above 0
    max: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min > self.max:
            raise _FieldError("min", f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class BatchingControl(_Section):
    """Keep one model version's p99 (queue wait + batch time of its items) under an SLO.

    Over the SLO, ``max_wait_ms`` is divided by ``step``; under ``raise_below`` x the SLO, with
    room for the longer wait, it is multiplied by ``step`` (larger batches: cheaper items).
    """

    model: str  # name (its last declared version) or name:version
    slo_p99_ms: Annotated[float, Field(gt=0)]
    max_wait_ms: Bounds
    step: Annotated[float, Field(gt=1, le=10)] = 1.5
    raise_below: Annotated[float, Field(gt=0, lt=1)] = 0.5  # share of the SLO


class CacheControl(_Section):
    """Set one endpoint's cache TTL (for new entries) from its hit ratio and staleness.

    At a hit ratio of ``raise_above`` or more the answers are reused, so they are kept longer
    (x ``step``) while the mean age of the answers served stays within ``staleness_budget_s``;
    under ``lower_below`` they are rarely reused and are kept shorter (/ ``step``): memory and
    staleness for nothing. Hits older on average than the budget shorten the TTL at any ratio.
    """

    endpoint: str
    ttl_s: Bounds
    staleness_budget_s: Annotated[float, Field(gt=0)]  # mean age of answers served from cache
    raise_above: Annotated[float, Field(gt=0, le=1)] = 0.5  # hit ratio
    lower_below: Annotated[float, Field(ge=0, lt=1)] = 0.1  # hit ratio
    step: Annotated[float, Field(gt=1, le=10)] = 2.0

    @model_validator(mode="after")
    def _band(self) -> CacheControl:
        if self.lower_below >= self.raise_above:
            raise _FieldError("lower_below", f"must be under raise_above ({self.raise_above:g}): "
                              "the ratios between them hold the TTL")  # fmt: skip
        return self


class DegradeControl(_Section):
    """Switch one selection rule of an endpoint on under load and off after, with hysteresis.

    The rule (``endpoints[].route.rules[]``, by its ``name``) is off until the controller turns
    it on: when ``signal`` of the rule's ``load_of`` model reaches ``on_above``; it goes off once
    the signal is at or under ``off_below`` and the rule has been on ``min_on_s``. While on, the
    rule's own ``when`` conditions still apply.
    """

    endpoint: str
    rule: str
    signal: Literal["queue_depth", "wait_ms"] = "queue_depth"
    on_above: Annotated[float, Field(gt=0)]
    off_below: Annotated[float, Field(ge=0)]
    min_on_s: Annotated[float, Field(ge=0)] = 10.0

    @model_validator(mode="after")
    def _band(self) -> DegradeControl:
        if self.off_below >= self.on_above:
            raise _FieldError("off_below", f"must be under on_above ({self.on_above:g}): the "
                              "band between them is the hysteresis")  # fmt: skip
        return self


class ControllerConfig(_Section):
    """The policy controller (docs/controller.md): what it may change, and how often it looks."""

    enabled: bool = True
    interval_s: Annotated[float, Field(ge=0.01)] = 1.0  # between two looks at the readings
    window_s: Annotated[float, Field(gt=0)] = 30.0  # readings older than this are forgotten
    # Latency samples (items) or cache lookups since a knob's last change, within window_s,
    # before that knob moves again: a decision reads what its last change did, not before it.
    min_samples: Annotated[int, Field(ge=1)] = 50
    batching: list[BatchingControl] = Field(default_factory=list)
    cache: list[CacheControl] = Field(default_factory=list)
    degrade: list[DegradeControl] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> ControllerConfig:
        if not (self.batching or self.cache or self.degrade):
            raise ValueError("give at least one of `batching`, `cache` or `degrade`")
        if self.window_s < self.interval_s:
            raise _FieldError("window_s", f"must be at least interval_s ({self.interval_s:g})")
        return self


def check_controller(config: FrugalConfig) -> None:
    """Every model, endpoint and rule the controller names exists, and every knob starts inside
    its bounds; raises ``_FieldError`` with the path under ``controller``."""
    controller = config.controller
    if controller is None:
        return
    seen: set[str] = set()
    for i, entry in enumerate(controller.batching):
        at = f"controller.batching[{i}]"
        model = config.find_model(entry.model)
        if model is None:
            declared = ", ".join(m.key for m in config.models)
            raise _FieldError(f"{at}.model", f"no model {entry.model!r}; declared: {declared}")
        if model.upstream is not None:
            raise _FieldError(f"{at}.model", f"{model.key} is an upstream LLM: it has no batcher")
        if model.key in seen:
            raise _FieldError(f"{at}.model", f"{model.key} is controlled twice")
        seen.add(model.key)
        batching = model.batching
        if batching.workers < 2:
            raise _FieldError(f"{at}.model", f"{model.key} has batching.workers 1, where "
                              "max_wait_ms has no effect (docs/batching.md): give it workers: "
                              "2 or more, or leave it out here")  # fmt: skip
        if entry.max_wait_ms.max > batching.timeout_ms:
            raise _FieldError(f"{at}.max_wait_ms.max", f"{entry.max_wait_ms.max:g} ms is past "
                              f"{model.key}'s batching.timeout_ms ({batching.timeout_ms:g}): "
                              "its items would expire waiting")  # fmt: skip
        if not entry.max_wait_ms.min <= batching.max_wait_ms <= entry.max_wait_ms.max:
            raise _FieldError(f"{at}.max_wait_ms", f"{model.key}'s batching.max_wait_ms "
                              f"({batching.max_wait_ms:g}), where the controller starts, is "
                              f"outside [{entry.max_wait_ms.min:g}, "
                              f"{entry.max_wait_ms.max:g}]")  # fmt: skip
    endpoints = {e.name: e for e in config.endpoints}
    seen = set()
    for i, cache in enumerate(controller.cache):
        at = f"controller.cache[{i}].endpoint"
        endpoint = endpoints.get(cache.endpoint)
        if endpoint is None:
            raise _FieldError(at, _no_endpoint(cache.endpoint, endpoints))
        if endpoint.cache is None or not endpoint.cache.enabled:
            raise _FieldError(at, f"endpoint {cache.endpoint} has no cache to control")
        if cache.endpoint in seen:
            raise _FieldError(at, f"endpoint {cache.endpoint} is controlled twice")
        seen.add(cache.endpoint)
        if not cache.ttl_s.min <= endpoint.cache.ttl_s <= cache.ttl_s.max:
            raise _FieldError(f"controller.cache[{i}].ttl_s", f"endpoint {cache.endpoint}'s "
                              f"cache.ttl_s ({endpoint.cache.ttl_s:g}), where the controller "
                              f"starts, is outside [{cache.ttl_s.min:g}, "
                              f"{cache.ttl_s.max:g}]")  # fmt: skip
    seen = set()
    for i, degrade in enumerate(controller.degrade):
        at = f"controller.degrade[{i}]"
        endpoint = endpoints.get(degrade.endpoint)
        if endpoint is None:
            raise _FieldError(f"{at}.endpoint", _no_endpoint(degrade.endpoint, endpoints))
        rules = endpoint.route.rules if endpoint.route is not None else []
        names = [rule.name or f"rule{k}" for k, rule in enumerate(rules)]
        if degrade.rule not in names:
            listed = ", ".join(names) or "none"
            raise _FieldError(f"{at}.rule", f"endpoint {degrade.endpoint} has no rule "
                              f"{degrade.rule!r}; its rules: {listed}")  # fmt: skip
        if f"{degrade.endpoint}/{degrade.rule}" in seen:
            raise _FieldError(f"{at}.rule", f"rule {degrade.rule} is controlled twice")
        seen.add(f"{degrade.endpoint}/{degrade.rule}")


def _no_endpoint(name: str, endpoints: Iterable[str]) -> str:
    return f"no endpoint {name!r}; declared: {', '.join(endpoints) or 'none'}"


__all__ = [
    "BatchingControl",
    "Bounds",
    "CacheControl",
    "ControllerConfig",
    "DegradeControl",
    "check_controller",
]
