"""frugal.yaml: its schema, and loading that names the file and field of every error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from frugal.errors import ConfigError

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
RuntimeName = Literal["sklearn", "onnx", "torch", "python", "openai"]
RUNTIMES_NEEDING_SHA256 = ("sklearn", "onnx", "torch")


class _Section(BaseModel):
    """Unknown keys are errors, so a typo in frugal.yaml never silently does nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceConfig(_Section):
    """The machine being paid for: a catalog name, an explicit price, or both (price wins)."""

    type: str | None = None
    price_usd_per_hour: Annotated[float, Field(gt=0)] | None = Field(
        default=None, validation_alias=AliasChoices("price_usd_per_hour", "price_per_hour")
    )
    slots: Annotated[int, Field(ge=1)] | None = None  # default: the catalog's vCPUs (GPUs), else 1
    # The vCPUs the price buys, for pricing the server's own CPU: default the catalog's, else
    # this machine's CPU count.
    vcpus: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _type_or_price(self) -> InstanceConfig:
        if self.type is None and self.price_usd_per_hour is None:
            raise ValueError("give a catalog `type` (e.g. c7i.large) or `price_usd_per_hour`")
        return self


class TensorSpec(_Section):
    """One named input tensor; the first dimension of ``shape`` is the batch (-1 = any size)."""

    name: str
    datatype: Datatype = "FP32"
    shape: list[int] = Field(default_factory=lambda: [-1])

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if not shape:
            raise ValueError("must have at least one dimension (the batch)")
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError("dimensions are positive sizes or -1 for 'any'")
        return shape


class BatchingConfig(_Section):
    """How one model version's batcher gathers items; see docs/batching.md."""

    max_batch_size: Annotated[int, Field(ge=1)] = 32
    max_wait_ms: Annotated[float, Field(gt=0)] = 2.0
    max_queue: Annotated[int, Field(ge=1)] = 1024
    timeout_ms: Annotated[float, Field(gt=0)] = 10_000.0
    workers: Annotated[int, Field(ge=1)] = 1
    # An item that finds every worker idle waits this long for company (0: it runs at once).
    linger_ms: Annotated[float, Field(ge=0)] = 0.0


class UpstreamConfig(_Section):
    """An OpenAI-compatible API that answers for a ``runtime: openai`` model (docs/llm.md).

    The key is read from the environment variable ``api_key_env`` at start-up, never from YAML.
    """

    base_url: str = Field(pattern=r"^https?://")  # e.g. https://api.openai.com/v1
    model: str = Field(min_length=1)  # the upstream's own model name
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    input_usd_per_1m: Annotated[float, Field(ge=0)] = 0.0  # per million prompt tokens
    output_usd_per_1m: Annotated[float, Field(ge=0)] = 0.0  # per million completion tokens
    timeout_s: Annotated[float, Field(gt=0)] = 60.0  # per attempt
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2  # on 429, 5xx and timeouts
    max_concurrency: Annotated[int, Field(ge=1)] = 64  # open upstream calls of this model


class ModelConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    runtime: RuntimeName
    path: Path | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    factory: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    inputs: list[TensorSpec] = Field(default_factory=list)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    options: dict[str, Any] = Field(default_factory=dict)  # runtime-specific, see docs/runtimes.md
    executor: Literal["thread", "process"] = "thread"  # process: for models that hold the GIL
    upstream: UpstreamConfig | None = None  # runtime openai: the API that answers

    @model_validator(mode="after")
    def _artifact(self) -> ModelConfig:
        if self.runtime == "openai":
            if self.upstream is None:
                raise _FieldError("upstream", "runtime openai needs an `upstream` section "
                                  "(base_url, model, api_key_env, prices)")  # fmt: skip
            for name in ("path", "sha256", "factory"):
                if getattr(self, name) is not None:
                    raise _FieldError(name, f"runtime openai calls an upstream API: remove "
                                      f"`{name}`")  # fmt: skip
            return self
        if self.upstream is not None:
            raise _FieldError("upstream", f"`upstream` is for runtime openai, not {self.runtime}")
        if self.runtime == "python":
            if self.factory is None:
                raise ValueError("runtime python needs `factory: module:callable`")
        elif self.factory is not None:
            raise ValueError(
                f"`factory` is for runtime python; runtime {self.runtime} loads `path`"
            )
        elif self.path is None:
            raise ValueError(f"runtime {self.runtime} needs `path` to the model file")
        if self.runtime in RUNTIMES_NEEDING_SHA256 and self.sha256 is None:
            raise ValueError(
                f"runtime {self.runtime} needs `sha256` of its file (frugal refuses to load "
                "an artifact it cannot verify; `sha256sum FILE` prints it)"
            )
        return self

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


class EarlyExpiryConfig(_Section):
    """XFetch: recompute a hot entry shortly before it expires, with probability rising as
    expiry nears (beta > 1 refreshes earlier), instead of letting every request miss at once."""

    enabled: bool = True
    beta: Annotated[float, Field(gt=0)] = 1.0


class SemanticConfig(_Section):
    """Serve the answer of the nearest stored text when cosine similarity >= threshold."""

    enabled: bool = True
    # Measured (bench/semantic_threshold.py, docs/caching.md): MiniLM scores word-order swaps
    # ("Paris to London" / "London to Paris") >= 0.99, so only 0.998 had no false hit.
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.998
    max_entries: Annotated[int, Field(ge=1)] = 10_000
    backend: Literal["onnx", "torch"] = "onnx"


class CacheConfig(_Section):
    """Response caching of one endpoint, item by item; see docs/caching.md."""

    enabled: bool = True
    store: Literal["memory", "redis", "disk"] = "memory"
    ttl_s: Annotated[float, Field(gt=0)] = 600.0
    max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_bytes: Annotated[int, Field(ge=1)] | None = None
    scope: Literal["global", "user", "session"] = "global"
    redis_url: str = "redis://127.0.0.1:6379/0"  # store: redis
    timeout_ms: Annotated[float, Field(gt=0)] = 50.0  # store: redis, per operation
    path: Path | None = None  # store: disk; default: frugal-cache-<endpoint>.db beside the ledger
    early_expiry: EarlyExpiryConfig | None = None
    warmup: Path | None = None  # a JSONL of instances computed at start-up, before readiness
    semantic: SemanticConfig | None = None  # text items only
    log_sample: Annotated[float, Field(ge=0, le=1)] = 0.0  # share of lookups logged

    @model_validator(mode="after")
    def _semantic_is_global(self) -> CacheConfig:
        if self.semantic is not None and self.semantic.enabled and self.scope != "global":
            # The nearest text may belong to another user's or session's entry.
            raise ValueError("semantic caching needs scope: global")
        return self


class CaptureConfig(_Section):
    """Opt-in storage of request and response payloads (debugging, shadow comparison).

    Payloads are never stored unless an endpoint has this section; what is stored is redacted
    first and deleted after ``retention_days``. See docs/security.md.
    """

    enabled: bool = True
    sample: Annotated[float, Field(gt=0, le=1)] = 1.0  # share of requests captured
    redact_fields: list[str] = Field(default_factory=list)  # object keys, at any depth
    redact_patterns: list[str] = Field(default_factory=list)  # regexes, in string values
    retention_days: Annotated[float, Field(gt=0)] = 7.0

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact_patterns[{i}] is not a regex: {exc}") from None
        return patterns


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


class LedgerConfig(_Section):
    enabled: bool = True
    path: Path = Path("frugal-ledger.db")
    flush_interval_ms: Annotated[float, Field(gt=0)] = 200.0
    # How often an idle run stamps "still alive" (a killed run is billed to its last one);
    # the writer wakes every flush interval, so beats come at least that far apart.
    heartbeat_s: Annotated[float, Field(gt=0, le=300)] = 2.0
    # How often the server's measured CPU is priced and shared by the requests that finished:
    # their rows wait for it, so it is also how late a row reaches the ledger.
    cost_interval_ms: Annotated[float, Field(ge=10, le=60_000)] = 1000.0
    retention_days: Annotated[float, Field(gt=0)] | None = None  # absent: rows are kept


class AuthConfig(_Section):
    """API keys (docs/security.md). Absent: the server binds to loopback only."""

    keys: Path = Path("frugal-keys.db")  # SQLite; secrets are stored only as hashes
    reload_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0  # keys changed by the CLI


class CorsConfig(_Section):
    """Cross-origin browser access; absent (the default), browsers get no CORS headers."""

    allow_origins: list[str] = Field(min_length=1)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST"])
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id"]
    )
    max_age_s: Annotated[int, Field(ge=0)] = 600


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_body_bytes: Annotated[int, Field(ge=1)] = 1_048_576
    max_header_bytes: Annotated[int, Field(ge=256)] = 16_384  # all header names and values
    max_concurrency: Annotated[int, Field(ge=1)] | None = None  # open requests, then 503
    cors: CorsConfig | None = None


class FrugalConfig(_Section):
    instance: InstanceConfig
    models: list[ModelConfig] = Field(min_length=1)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    auth: AuthConfig | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _references(self) -> FrugalConfig:
        if self.auth is not None and not self.ledger.enabled:
            # Daily budgets are sums over the ledger, and the audit log lives in it.
            raise _FieldError("ledger.enabled", "auth needs the ledger (budgets and audit log)")
        seen: set[str] = set()
        for i, model in enumerate(self.models):
            if model.key in seen:
                raise _FieldError(f"models[{i}]", f"duplicate model version {model.key}")
            seen.add(model.key)
        names: set[str] = set()
        for i, endpoint in enumerate(self.endpoints):
            if endpoint.name in names:
                raise _FieldError(f"endpoints[{i}].name", f"duplicate endpoint {endpoint.name}")
            names.add(endpoint.name)
            found = []
            for field, ref in endpoint.refs():
                target = self.find_model(ref)
                if target is None:
                    declared = ", ".join(sorted(seen))
                    raise _FieldError(
                        f"endpoints[{i}].{field}", f"no model {ref!r}; declared: {declared}"
                    )
                found.append((field, target))
            _check_llm_endpoint(endpoint, found, f"endpoints[{i}]")
        return self

    @property
    def local_models(self) -> list[ModelConfig]:
        """Models this process loads and batches (every runtime but an upstream LLM)."""
        return [m for m in self.models if m.upstream is None]

    @property
    def upstream_models(self) -> list[ModelConfig]:
        """Upstream LLM APIs (``runtime: openai``): no artifact, no batcher, priced per token."""
        return [m for m in self.models if m.upstream is not None]

    def find_model(self, ref: str) -> ModelConfig | None:
        """``name`` means the last declared version of that name; ``name:version`` is exact."""
        name, _, version = ref.partition(":")
        found = [m for m in self.models if m.name == name and (not version or m.version == version)]
        return found[-1] if found else None


def _check_llm_endpoint(
    endpoint: EndpointConfig, models: list[tuple[str, ModelConfig]], at: str
) -> None:
    """Upstream LLMs and local models do not mix in one endpoint; fallbacks are LLM-only."""
    llm = [m.runtime == "openai" for _, m in models]
    if any(llm) and not all(llm):
        field = models[llm.index(not llm[0])][0]
        raise _FieldError(
            f"{at}.{field}", "an endpoint's models are all runtime openai or none of them"
        )
    route = endpoint.route
    if route is not None and route.cascade is not None:
        _check_gates(route.cascade, llm=all(llm), at=f"{at}.route.cascade")
    if all(llm) and route is not None:
        for name in ("split", "shadow"):
            if getattr(route, name):
                raise _FieldError(f"{at}.route.{name}", f"`{name}` over runtime openai models is "
                                  "not supported yet")  # fmt: skip
        if route.rules:
            raise _FieldError(f"{at}.route.rules", "`rules` over runtime openai models are not "
                              "supported yet")  # fmt: skip
    if not all(llm) and route is not None and route.fallback is not None:
        raise _FieldError(f"{at}.route.fallback", "`fallback` is for runtime openai models")
    for name in ("cache", "capture"):
        if all(llm) and getattr(endpoint, name) is not None:
            raise _FieldError(f"{at}.{name}", f"`{name}` is not supported yet on endpoints of "
                              "runtime openai models")  # fmt: skip
    if not all(llm) and endpoint.llm is not None:
        raise _FieldError(f"{at}.llm", "`llm` token limits are for runtime openai models")


def _check_gates(tiers: list[TierConfig], *, llm: bool, at: str) -> None:
    """An LLM answer has no class probabilities; a local model has no token logprobs."""
    allowed = LLM_GATE_SIGNALS if llm else LOCAL_GATE_SIGNALS
    kind = "runtime openai" if llm else "local-model"
    for i, tier in enumerate(tiers):
        if tier.accept is not None and tier.accept.signal not in allowed:
            raise _FieldError(
                f"{at}[{i}].accept.{tier.accept.signal}",
                f"`{tier.accept.signal}` is not a gate of {kind} tiers: use "
                + " or ".join(f"`{n}`" for n in allowed),
            )


class _FieldError(ValueError):
    """Raised inside validators to report a precise path that pydantic's loc cannot carry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("models", 1, "batching", "max_wait_ms")`` -> ``models[1].batching.max_wait_ms``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "union[")) or part in ("int", "float", "str"):
            continue  # pydantic's names for union branches and validators, not fields
        else:
            out += f".{part}" if out else part
    return out


def parse_config(data: Any, *, file: str = "", base_dir: Path | None = None) -> FrugalConfig:
    """Validate a mapping already read from YAML; relative paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping with `instance` and `models`", file=file)
    try:
        config = FrugalConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):  # raised by a nested section: prefix its path
            prefix = format_loc(err["loc"])
            field = f"{prefix}.{ctx_error.field}" if prefix else ctx_error.field
            raise ConfigError(ctx_error.message, field=field, file=file) from None
        message = err["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(message + more, field=format_loc(err["loc"]), file=file) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def load_config(path: str | Path) -> FrugalConfig:
    """Read and validate frugal.yaml; every error names the file and, where it can, the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", file=str(path)) from None
    return parse_config(data, file=str(path), base_dir=path.resolve().parent)


def _resolve_paths(config: FrugalConfig, base_dir: Path) -> FrugalConfig:
    models = [
        m.model_copy(update={"path": base_dir / m.path})
        if m.path is not None and not m.path.is_absolute()
        else m
        for m in config.models
    ]
    ledger = config.ledger
    if not ledger.path.is_absolute():
        ledger = ledger.model_copy(update={"path": base_dir / ledger.path})
    auth = config.auth
    if auth is not None and not auth.keys.is_absolute():
        auth = auth.model_copy(update={"keys": base_dir / auth.keys})
    endpoints = []
    for endpoint in config.endpoints:
        cache = endpoint.cache
        if cache is not None:
            cache = cache.model_copy(update={
                name: base_dir / value
                for name in ("path", "warmup")
                if (value := getattr(cache, name)) is not None and not value.is_absolute()
            })  # fmt: skip
            endpoint = endpoint.model_copy(update={"cache": cache})
        endpoints.append(endpoint)
    return config.model_copy(
        update={"models": models, "ledger": ledger, "auth": auth, "endpoints": endpoints}
    )


__all__ = [
    "AuthConfig",
    "BatchingConfig",
    "CacheConfig",
    "CaptureConfig",
    "CorsConfig",
    "EarlyExpiryConfig",
    "EndpointConfig",
    "FrugalConfig",
    "GateConfig",
    "InstanceConfig",
    "LLMBudgetConfig",
    "LedgerConfig",
    "ModelConfig",
    "RouteConfig",
    "SemanticConfig",
    "ServerConfig",
    "TensorSpec",
    "TierConfig",
    "UpstreamConfig",
    "load_config",
    "parse_comparison",
    "parse_config",
]
