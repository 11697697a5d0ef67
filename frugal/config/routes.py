"""frugal.yaml's `endpoints` and their `route`: one model, a cascade, a split, rules, shadows."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from frugal.config._base import _FieldError, _Section
from frugal.config.caching import CacheConfig, CaptureConfig
from frugal.config.models import ModelConfig

_COMPARISON = re.compile(r"^\s*(>=|>|<=|<)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_comparison(text: str) -> tuple[str, float]:
    """``">= 0.92"`` -> ``(">=", 0.92)``; the gates of a cascade are written this way."""
    match = _COMPARISON.match(text)
    if match is None:
        raise ValueError(f'{text!r} is not a comparison like ">= 0.92"')
    return match.group(1), float(match.group(2))


GATE_SIGNALS = ("confidence", "margin", "mean_logprob", "scorer")
LOCAL_GATE_SIGNALS = ("confidence", "margin", "scorer")  # local-model tiers
LLM_GATE_SIGNALS = ("mean_logprob", "scorer")  # runtime openai tiers


class GateConfig(_Section):
    """When a cascade tier's answer is kept; exactly one signal.

    ``confidence`` / ``margin`` compare a local model's own numbers (max class probability; top
    minus runner-up). ``mean_logprob`` compares the mean token logprob of an upstream LLM's
    answer (runtime openai tiers). ``scorer`` is a ``module:function(inputs, outputs) -> scores``
    called on a batch of items and their predictions (for LLM tiers: request payloads and
    completion bodies), compared with ``threshold``.
    """

    confidence: str | None = None
    margin: str | None = None
    mean_logprob: str | None = None
    scorer: str | None = None
    threshold: str | None = None

    @model_validator(mode="after")
    def _one_signal(self) -> GateConfig:
        given = [n for n in GATE_SIGNALS if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `confidence`, `margin`, `mean_logprob` or `scorer`"
            )
        if self.scorer is not None:
            if self.threshold is None:
                raise ValueError('a `scorer` needs a `threshold` such as ">= 0.5"')
            if ":" not in self.scorer:
                raise ValueError("`scorer` is `module:function`")
        elif self.threshold is not None:
            raise ValueError("`threshold` goes with `scorer`")
        for name in ("confidence", "margin", "mean_logprob", "threshold"):
            value = getattr(self, name)
            if value is not None:
                parse_comparison(value)
        return self

    @property
    def signal(self) -> str:
        return next(n for n in GATE_SIGNALS if getattr(self, n) is not None)

    @property
    def comparison(self) -> tuple[str, float]:
        text = self.threshold if self.scorer is not None else getattr(self, self.signal)
        return parse_comparison(text or "")


class TierConfig(_Section):
    model: str  # "name" or "name:version"
    accept: GateConfig | None = None  # absent: the last tier, which keeps every answer


class WeightedModel(_Section):
    """One version in a split, with its share of the traffic (weights are relative)."""

    model: str
    weight: Annotated[float, Field(ge=0)]


class ShadowConfig(_Section):
    """A version that gets a copy of the traffic; its answers are compared, then discarded."""

    model: str
    sample: Annotated[float, Field(gt=0, le=1)] = 1.0  # the share of requests copied
    tolerance: Annotated[float, Field(ge=0)] = 0.0  # numbers agree within this absolute difference


class RollbackConfig(_Section):
    """When a canary is taken out: its error rate or p99 over the baseline's by a margin."""

    window_s: Annotated[float, Field(gt=0)] = 60.0  # requests older than this are forgotten
    min_requests: Annotated[int, Field(ge=1)] = 30  # per version in the window, before judging
    error_rate_margin: Annotated[float, Field(ge=0, le=1)] | None = 0.02  # absolute, 0.02 = 2 pt
    p99_margin_ms: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _some_margin(self) -> RollbackConfig:
        if self.error_rate_margin is None and self.p99_margin_ms is None:
            raise ValueError("give `error_rate_margin`, `p99_margin_ms` or both")
        return self


class RuleWhen(_Section):
    """Conditions of a rule; all that are given must hold."""

    tier: str | list[str] | None = None  # the caller's tier (API key, else x-frugal-tier)
    deadline_ms: str | None = None  # milliseconds left of the request's deadline: "< 50"
    queue_depth: str | None = None  # items queued at `load_of`: "> 256"
    wait_ms: str | None = None  # estimated wait at `load_of` (queue / recent drain rate): "> 200"
    load_of: str | None = None  # the model whose load is read; default: the route's last model

    @model_validator(mode="after")
    def _conditions(self) -> RuleWhen:
        given = [n for n in ("tier", "deadline_ms", "queue_depth", "wait_ms")
                 if getattr(self, n) is not None]  # fmt: skip
        if not given:
            raise ValueError("give at least one of `tier`, `deadline_ms`, `queue_depth`, `wait_ms`")
        for name in ("deadline_ms", "queue_depth", "wait_ms"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_comparison(value)
                except ValueError as exc:
                    raise _FieldError(name, str(exc)) from None
        if self.load_of is not None and self.queue_depth is None and self.wait_ms is None:
            raise _FieldError("load_of", "`load_of` goes with `queue_depth` or `wait_ms`")
        return self

    @property
    def tiers(self) -> tuple[str, ...] | None:
        if self.tier is None:
            return None
        return (self.tier,) if isinstance(self.tier, str) else tuple(self.tier)


class RuleConfig(_Section):
    """Evaluated in order before the route; the first that matches picks the model(s)."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    when: RuleWhen
    model: str | None = None  # answer with this one model
    start: str | None = None  # a cascade: begin at this tier, skipping the cheaper ones
    degraded: bool = False  # counted as degraded service in the ledger and metrics

    @model_validator(mode="after")
    def _one_action(self) -> RuleConfig:
        if (self.model is None) == (self.start is None):
            raise ValueError("give `model` (one model) or `start` (a cascade tier), not both")
        return self


class DriftConfig(_Section):
    """A cascade's accuracy watched while it serves (docs/routing.md#drift-check-while-serving):
    labels fed back, or the last tier's agreement on a sample, bounded as calibrate bounds it."""

    max_drop: Annotated[float, Field(gt=0, lt=1)] = 0.005  # against the last tier alone
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    window: Annotated[int, Field(ge=10, le=1_000_000)] = 2000  # the last items judged
    min_items: Annotated[int, Field(ge=1)] = 200  # judged items before any verdict
    action: Literal["tighten", "alert"] = "tighten"
    step: Annotated[float, Field(gt=0)] = 0.01  # a gate's threshold moves this far toward strict
    # The strictest threshold a tighten may reach (per gate, in its own direction); absent: none.
    limit: float | None = None
    # Share of the cascade's items judged by the last tier too (its cost booked as shadow spend).
    shadow_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    feedback_ttl_s: Annotated[float, Field(gt=0, le=30 * 86400)] = 3600.0  # answers await labels
    max_pending: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000  # requests awaiting labels

    @property
    def items_to_vouch(self) -> int:
        """The fewest judged items whose bound can be within max_drop at all (none harmed):
        1 - ((1 - confidence)/2)^(1/n) <= max_drop. Fewer cannot tell a sound cascade from a
        drifted one, so no verdict comes before them."""
        return math.ceil(math.log((1 - self.confidence) / 2) / math.log(1 - self.max_drop))

    @model_validator(mode="after")
    def _window(self) -> DriftConfig:
        if self.min_items > self.window:
            raise _FieldError("min_items", f"more than `window` ({self.window}): no verdict "
                              "could ever be reached")  # fmt: skip
        if self.items_to_vouch > self.window:
            raise _FieldError("window", f"{self.window} judged items cannot vouch for a drop of "
                              f"{self.max_drop:g} at confidence {self.confidence:g}: that takes "
                              f"at least {self.items_to_vouch}")  # fmt: skip
        return self


class RouteConfig(_Section):
    """How an endpoint picks its models (docs/routing.md).

    Exactly one base: one ``model``, a ``cascade``, a ``fallback`` list or a ``split`` of
    versions; ``rules`` may override it per request and ``shadow`` copies traffic to a version.
    """

    model: str | None = None
    cascade: list[TierConfig] | None = Field(default=None, min_length=2)
    fallback: list[str] | None = Field(default=None, min_length=2)  # tried in order on error
    split: list[WeightedModel] | None = Field(default=None, min_length=2)
    sticky: bool = False  # split: a user (API key / x-frugal-user) keeps one version
    rollback: RollbackConfig | None = None  # split: automatic canary rollback
    rules: list[RuleConfig] = Field(default_factory=list)
    shadow: ShadowConfig | None = None
    drift: DriftConfig | None = None  # cascade: watch its accuracy drop while serving

    @model_validator(mode="after")
    def _gates(self) -> RouteConfig:
        bases = [n for n in ("model", "cascade", "fallback", "split") if getattr(self, n)]
        if len(bases) != 1:
            raise ValueError("give exactly one of `model`, `cascade`, `fallback` or `split`")
        if self.split is None:
            for name in ("sticky", "rollback"):
                if getattr(self, name):
                    raise _FieldError(name, f"`{name}` goes with `split`")
        else:
            if not any(w.weight > 0 for w in self.split):
                raise _FieldError("split", "at least one version needs a weight above 0")
            models = [w.model for w in self.split]
            if len(set(models)) != len(models):
                raise _FieldError("split", "each version appears once")
        for i, rule in enumerate(self.rules):
            if rule.start is not None:
                tiers = [t.model for t in self.cascade or []]
                if rule.start not in tiers:
                    raise _FieldError(f"rules[{i}].start", "`start` names a tier of this "
                                      f"route's cascade: {', '.join(tiers) or 'none'}")  # fmt: skip
        if self.cascade is None:
            if self.drift is not None:
                raise _FieldError("drift", "`drift` watches a cascade: it goes with `cascade`")
            return self
        for i, tier in enumerate(self.cascade[:-1]):
            if tier.accept is None:
                raise _FieldError(f"cascade[{i}].accept",
                                  "every tier but the last needs an `accept` gate")  # fmt: skip
        if self.cascade[-1].accept is not None:
            raise _FieldError(f"cascade[{len(self.cascade) - 1}].accept",
                              "the last tier keeps every answer: remove its gate")  # fmt: skip
        return self

    def base_refs(self) -> list[tuple[str, str]]:
        """(field, model reference) of the base route, cheapest (first tier) first."""
        if self.cascade is not None:
            return [(f"cascade[{i}].model", t.model) for i, t in enumerate(self.cascade)]
        if self.fallback is not None:
            return [(f"fallback[{i}]", m) for i, m in enumerate(self.fallback)]
        if self.split is not None:
            return [(f"split[{i}].model", w.model) for i, w in enumerate(self.split)]
        assert self.model is not None
        return [("model", self.model)]

    def refs(self) -> list[tuple[str, str]]:
        """Every model reference with its field: the base, the rules' and the shadow's."""
        found = self.base_refs()
        for i, rule in enumerate(self.rules):
            if rule.model is not None:
                found.append((f"rules[{i}].model", rule.model))
            if rule.when.load_of is not None:
                found.append((f"rules[{i}].when.load_of", rule.when.load_of))
        if self.shadow is not None:
            found.append(("shadow.model", self.shadow.model))
        return found


class LLMBudgetConfig(_Section):
    """Token limits an LLM endpoint applies to each request before calling upstream."""

    max_tokens: Annotated[int, Field(ge=1)] | None = None  # clamps (or sets) max_tokens
    max_prompt_tokens: Annotated[int, Field(ge=1)] | None = None  # oldest messages dropped


class EndpointConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str | None = None  # "name" (its last declared version) or "name:version"
    route: RouteConfig | None = None  # instead of `model`: a cascade or a fallback list
    cache: CacheConfig | None = None  # absent: no caching
    capture: CaptureConfig | None = None  # absent: payloads are never stored
    llm: LLMBudgetConfig | None = None  # runtime openai endpoints: token limits per request

    @model_validator(mode="after")
    def _model_or_route(self) -> EndpointConfig:
        if (self.model is None) == (self.route is None):
            raise ValueError("give `model` (one model) or `route` (a cascade), not both")
        return self

    @property
    def models(self) -> list[str]:
        """The model references of the base route, cheapest (first tier) first."""
        if self.route is not None:
            return [ref for _, ref in self.route.base_refs()]
        assert self.model is not None
        return [self.model]

    def refs(self) -> list[tuple[str, str]]:
        """Every model reference with its field, under ``route.`` where there is a route."""
        if self.route is None:
            assert self.model is not None
            return [("model", self.model)]
        return [(f"route.{field}", ref) for field, ref in self.route.refs()]


def _check_llm_endpoint(
    endpoint: EndpointConfig, models: list[tuple[str, ModelConfig]], at: str
) -> None:
    """Upstream LLMs and local models do not mix in one endpoint, except as a cascade whose
    local tiers come first (a classifier answers the simple chats, the LLM the rest);
    fallbacks are LLM-only."""
    llm = [m.runtime == "openai" for _, m in models]
    route = endpoint.route
    if any(llm) and not all(llm):
        _check_mixed_cascade(endpoint, models, llm, at)
    if route is not None and route.cascade is not None:
        _check_gates(route.cascade, llm[: len(route.cascade)], at=f"{at}.route.cascade")
    upstream = any(llm)
    if upstream and route is not None:
        for name in ("split", "shadow", "drift"):
            if getattr(route, name):
                raise _FieldError(f"{at}.route.{name}", f"`{name}` over runtime openai models is "
                                  "not supported yet")  # fmt: skip
        if route.rules:
            raise _FieldError(f"{at}.route.rules", "`rules` over runtime openai models are not "
                              "supported yet")  # fmt: skip
    if not upstream and route is not None and route.fallback is not None:
        raise _FieldError(f"{at}.route.fallback", "`fallback` is for runtime openai models")
    for name in ("cache", "capture"):
        if upstream and getattr(endpoint, name) is not None:
            raise _FieldError(f"{at}.{name}", f"`{name}` is not supported yet on endpoints of "
                              "runtime openai models")  # fmt: skip
    if not upstream and endpoint.llm is not None:
        raise _FieldError(f"{at}.llm", "`llm` token limits are for runtime openai models")


def _check_mixed_cascade(
    endpoint: EndpointConfig, models: list[tuple[str, ModelConfig]], llm: list[bool], at: str
) -> None:
    """Local models first, then runtime openai ones, each local one reading text: the chat's
    last user message is its one input (routing/llm_cascade.py)."""
    route = endpoint.route
    if route is None or route.cascade is None:
        field = models[llm.index(not llm[0])][0]
        raise _FieldError(
            f"{at}.{field}",
            "an endpoint's models are all runtime openai or none of them (a `cascade` may put "
            "local models first, before its runtime openai tiers)",
        )
    tiers = llm[: len(route.cascade)]
    first_llm = tiers.index(True)
    for i in range(first_llm, len(tiers)):
        if not tiers[i]:
            raise _FieldError(f"{at}.route.cascade[{i}].model", "in a cascade of local and "
                              "runtime openai models the local tiers come first")  # fmt: skip
    for i in range(first_llm):
        inputs = models[i][1].inputs
        if inputs and (len(inputs) != 1 or inputs[0].datatype != "BYTES"):
            raise _FieldError(
                f"{at}.route.cascade[{i}].model",
                "a local tier before runtime openai tiers reads the chat's last user message: "
                "its model takes one BYTES (text) input, or declares no inputs",
            )


def _check_gates(tiers: list[TierConfig], llm: list[bool], *, at: str) -> None:
    """An LLM answer has no class probabilities; a local model has no token logprobs."""
    for i, (tier, upstream) in enumerate(zip(tiers, llm, strict=True)):
        allowed = LLM_GATE_SIGNALS if upstream else LOCAL_GATE_SIGNALS
        kind = "runtime openai" if upstream else "local-model"
        if tier.accept is not None and tier.accept.signal not in allowed:
            raise _FieldError(
                f"{at}[{i}].accept.{tier.accept.signal}",
                f"`{tier.accept.signal}` is not a gate of {kind} tiers: use "
                + " or ".join(f"`{n}`" for n in allowed),
            )


__all__ = [
    "GATE_SIGNALS",
    "LLM_GATE_SIGNALS",
    "LOCAL_GATE_SIGNALS",
    "DriftConfig",
    "EndpointConfig",
    "GateConfig",
    "LLMBudgetConfig",
    "RollbackConfig",
    "RouteConfig",
    "RuleConfig",
    "RuleWhen",
    "ShadowConfig",
    "TierConfig",
    "WeightedModel",
    "parse_comparison",
]
