"""The request path without HTTP: validate -> route -> batch -> price -> ledger and metrics.

Protocol codecs turn wire formats into calls of ``Engine.predict`` / ``Engine.infer`` and back;
the same core would serve gRPC or an in-process caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from frugal.accounting import BatchRow, Ledger, LedgerRow, Pricer
from frugal.cache import CacheStage, build_store
from frugal.cache.semantic import SemanticIndex
from frugal.config import (
    CacheConfig,
    FrugalConfig,
    ModelConfig,
    ShadowConfig,
)
from frugal.errors import ConfigError, DeadlineExceeded, FrugalError, InvalidInput, NotFound
from frugal.observability import BatcherState, CacheState, ServingMetrics
from frugal.routing import (
    RoutedResult,
    Router,
    RouteRequest,
)
from frugal.routing.rules import Load
from frugal.routing.shadow import compare
from frugal.runtimes import InputSchema, Model
from frugal.serving.batcher import Batcher
from frugal.serving.errors import status_of
from frugal.serving.route_builder import RouterBuilder
from frugal.serving.route_control import RouteControl
from frugal.types import BatchStats, Item, ItemOutcome

log = logging.getLogger("frugal.engine")


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished request: outcomes in order (each names who answered it), what it cost."""

    outcomes: list[ItemOutcome]
    cost_usd: float
    cache: str = "bypass"  # hit | miss | partial | bypass
    saved_usd: float = 0.0  # what the cache hits would have cost
    route: str = ""  # cascade tiers and how many items stopped at each: "small:1*7>large:1*3"
    degraded: bool = False  # a selection rule gave a cheaper answer (load, deadline)

    @property
    def first_error(self) -> FrugalError | None:
        return next((o.error for o in self.outcomes if o.error is not None), None)

    @property
    def all_failed(self) -> bool:
        return all(o.error is not None for o in self.outcomes)

    @property
    def models(self) -> list[str]:
        """The model version that answered each item, in order."""
        return [o.model for o in self.outcomes]

    @property
    def model_header(self) -> str:
        return ",".join(dict.fromkeys(o.model for o in self.outcomes if o.model not in ("", "-")))

    @property
    def tokens(self) -> int:
        return tokens_of(self.outcomes)


def tokens_of(outcomes: Sequence[ItemOutcome]) -> int:
    return sum(o.prediction.tokens for o in outcomes if o.prediction is not None)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    name: str
    router: Router
    schema: InputSchema
    cache: CacheStage | None = None
    shadow: ShadowConfig | None = None
    shadow_model: str = ""  # name:version


class Engine:
    """Owns the batchers, routers, slot pool, ledger and metrics of one serving process."""

    def __init__(
        self,
        config: FrugalConfig,
        models: dict[str, Model],
        *,
        pricer: Pricer,
        ledger: Ledger | None,
        metrics: ServingMetrics,
    ) -> None:
        self.config = config
        self.pricer = pricer
        self.ledger = ledger
        self.metrics = metrics
        self.ready = False
        # One thread per slot: a batch holds a slot while it runs (DESIGN.md's cost model).
        self.slot_pool = ThreadPoolExecutor(pricer.slots, thread_name_prefix="frugal-slot")
        # Upstream LLMs (runtime openai) take no batcher or slot: serving/openai_api.py has them.
        self.model_configs: dict[str, ModelConfig] = {
            m.key: m for m in config.models if m.runtime != "openai"
        }
        self.schemas = {key: InputSchema(cfg.inputs) for key, cfg in self.model_configs.items()}
        self.batchers = {
            key: Batcher(
                models[key],
                cfg.batching,
                slot_pool=self.slot_pool,
                pricer=pricer,
                on_batch=self._on_batch,
            )
            for key, cfg in self.model_configs.items()
        }
        self.endpoints: dict[str, _Endpoint] = {}
        self._mean_item_cost: dict[str, float] = {}
        self.routes = RouteControl(metrics, config.ledger.path if config.ledger.enabled else None)
        self._shadows: set[asyncio.Task[None]] = set()
        self._shadow_rng = random.Random()
        self.warmup = {
            e.name: read_warmup(e.cache.warmup, f"endpoints[{i}].cache.warmup")
            for i, e in enumerate(config.endpoints)
            if e.cache is not None and e.cache.enabled and e.cache.warmup is not None
        }
        builder = RouterBuilder(config, metrics, self.routes, self._load)
        for index, endpoint in enumerate(config.endpoints):
            if not all(builder.key(ref) in self.model_configs for ref in endpoint.models):
                continue  # an LLM endpoint
            router = builder.build(endpoint, f"endpoints[{index}].route")
            target = self.model_configs[router.models[0]]
            cache = None
            if endpoint.cache is not None and endpoint.cache.enabled:
                store = build_store(
                    endpoint.name, endpoint.cache, data_dir=config.ledger.path.parent
                )
                cache = CacheStage(
                    endpoint.name, endpoint.cache, store, router.models,
                    mean_item_cost=self.mean_item_cost, semantic=semantic_index(endpoint.cache),
                )  # fmt: skip
            shadow = endpoint.route.shadow if endpoint.route is not None else None
            self.endpoints[endpoint.name] = _Endpoint(
                endpoint.name, router, self.schemas[target.key], cache, shadow,
                builder.key(shadow.model) if shadow is not None else "",
            )  # fmt: skip
        metrics.watch_caches(self._cache_states)
        metrics.watch_batchers(
            lambda: (BatcherState(k, b.queue_depth, b.batch_cost) for k, b in self.batchers.items())
        )

    def _load(self, model: str) -> Load:
        batcher = self.batchers[model]
        return Load(batcher.queue_depth, batcher.estimated_wait_s)

    # ---- the two entry points ----------------------------------------------------------------

    async def predict(
        self,
        endpoint: str,
        instances: Sequence[object],
        *,
        deadline: float,
        user: str | None = None,
        session: str | None = None,
        tier: str | None = None,
        request_id: str = "",
    ) -> Answer:
        """Simple JSON: one item per instance, through the endpoint's cache and route."""
        ep = self.endpoints.get(endpoint)
        if ep is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise NotFound(f"no endpoint {endpoint!r}; served: {known}")
        self._check_fits(ep.router.models, len(instances), "instances")
        items = [
            ep.schema.item_from_instance(x, f"instances[{i}]") for i, x in enumerate(instances)
        ]
        answer = await self._answer(ep, items, deadline, user, session, tier)
        if ep.shadow is not None and self._shadow_rng.random() < ep.shadow.sample:
            self._spawn_shadow(ep, items, answer, request_id)
        return answer

    async def _answer(
        self, ep: _Endpoint, items: list[Item], deadline: float, user: str | None,
        session: str | None, tier: str | None,
    ) -> Answer:  # fmt: skip
        endpoint = ep.name
        scope = ep.cache.scope_of(user, session) if ep.cache is not None else None
        if ep.cache is None or scope is None:
            routed = await ep.router.route(
                RouteRequest(endpoint, items, deadline, user, tier), self._call
            )
            answer = self._finish(routed.outcomes)
            return dataclasses.replace(
                answer, route=">".join(routed.path), degraded=routed.degraded
            )

        results: list[RoutedResult] = []

        async def compute(misses: list[Item]) -> list[ItemOutcome]:
            request = RouteRequest(endpoint, misses, deadline, user, tier)
            routed = await ep.router.route(request, self._call)
            results.append(routed)
            return routed.outcomes

        result = await ep.cache.serve(items, scope, compute)
        self.metrics.observe_cache(
            endpoint, ep.cache.config.scope, result.hits, len(items) - result.hits,
            result.saved_usd,
        )  # fmt: skip
        cost = math.fsum(o.cost_usd for o in result.outcomes)
        route = ";".join(p for r in results if (p := ">".join(r.path)))
        return Answer(result.outcomes, cost, result.label, result.saved_usd,
                      route, any(r.degraded for r in results))  # fmt: skip

    # ---- shadow traffic: after the answer, never in its way ----------------------------------

    def _spawn_shadow(
        self, ep: _Endpoint, items: list[Item], answer: Answer, request_id: str
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._shadow(ep, items, answer, request_id))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, ep: _Endpoint, items: list[Item], answer: Answer, request_id: str
    ) -> None:
        """The shadow's copy: compared, counted, priced as shadow spend, then discarded.

        Its ledger row has no key: the operator chose to shadow, the caller's budget does not pay.
        """
        assert ep.shadow is not None
        model = ep.shadow_model
        received = time.monotonic()
        deadline = self.deadline_for(model, received, None)
        try:
            outcomes = await self._call(model, items, deadline)
        except FrugalError as error:  # its queue is full, or draining: the copy is dropped
            outcomes = [ItemOutcome(None, error, 0.0, None, model) for _ in items]
        except Exception:
            log.exception("shadow %s on %s failed unexpectedly", model, ep.name)
            return
        latency_s = time.monotonic() - received
        result = compare(answer.outcomes, outcomes, ep.shadow.tolerance)
        cost = math.fsum(o.cost_usd for o in outcomes)
        self.metrics.routes.observe_shadow(
            ep.name, model, agreed=result.agreed, disagreed=result.disagreed,
            failed=result.failed, latency_s=latency_s, cost_usd=cost,
        )  # fmt: skip
        failed = next((o.error for o in outcomes if o.error is not None), None)
        status = 200 if failed is None else status_of(failed)
        self.record(ep.name, model, request_id, received, status=status, outcomes=outcomes,
                    cost_usd=cost, shadow=True)  # fmt: skip

    async def warm_up(self) -> None:
        """Compute each endpoint's warm-up instances into its cache; runs before readiness."""
        for endpoint, instances in self.warmup.items():
            model = self.endpoint_model(endpoint)
            chunk = self.model_configs[model].batching.max_batch_size
            failed = 0
            step = max(1, len(instances) // 10)
            for start in range(0, len(instances), chunk):
                answer = await self.predict(
                    endpoint, instances[start : start + chunk], deadline=time.monotonic() + 600
                )
                failed += sum(o.error is not None for o in answer.outcomes)
                done = min(len(instances), start + chunk)
                if done // step != start // step or done == len(instances):
                    log.info("warming up %s: %d/%d instances", endpoint, done, len(instances))
            if failed:
                log.warning(
                    "warming up %s: %d instances failed and were not cached", endpoint, failed
                )

    def _cache_states(self) -> list[CacheState]:
        states = []
        for name, endpoint in self.endpoints.items():
            if endpoint.cache is not None:
                s = endpoint.cache.store.stats()
                states.append(CacheState(name, s.entries, s.bytes, s.evictions, s.errors))
        return states

    def mean_item_cost(self, model: str) -> float:
        """The running mean cost of one item of that model version: what a cache hit saves."""
        return self._mean_item_cost.get(model, 0.0)

    async def infer(
        self, model: str, tensors: Sequence[dict[str, object]], *, deadline: float
    ) -> Answer:
        """Open Inference Protocol: a model version addressed directly, no endpoint route."""
        schema = self.schemas[model]
        items = schema.items_from_tensors(tensors)
        self._check_fits((model,), len(items), "inputs")
        return self._finish(await self._call(model, items, deadline))

    def resolve_model(self, name: str, version: str | None = None) -> str:
        """``name`` (its last declared version) or ``name`` + ``version`` -> the served key."""
        found = self.config.find_model(f"{name}:{version}" if version else name)
        if found is not None and found.runtime == "openai":
            raise NotFound(
                f"model {found.key} is an upstream LLM, not served on this route",
                hint="call POST /v1/chat/completions or /v1/embeddings with its name",
            )
        if found is None:
            served = ", ".join(sorted(self.model_configs))
            what = f"{name} version {version}" if version else name
            raise NotFound(f"no model {what}; served: {served}")
        return found.key

    def endpoint_deadline(self, endpoint: str, received: float, header_ms: float | None) -> float:
        """A cascade gets the longest timeout of its tiers, for the whole request."""
        self.endpoint_model(endpoint)  # NotFound for an unknown endpoint
        models = self.endpoints[endpoint].router.models
        timeout_ms = max(self.model_configs[m].batching.timeout_ms for m in models)
        if header_ms is not None:
            timeout_ms = min(timeout_ms, header_ms)
        return received + timeout_ms / 1000

    def deadline_for(self, model_key: str, received: float, header_ms: float | None) -> float:
        timeout_ms = self.model_configs[model_key].batching.timeout_ms
        if header_ms is not None:
            timeout_ms = min(timeout_ms, header_ms)
        return received + timeout_ms / 1000

    def endpoint_model(self, endpoint: str) -> str:
        ep = self.endpoints.get(endpoint)
        if ep is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise NotFound(f"no endpoint {endpoint!r}; served: {known}")
        return ep.router.models[0]

    async def drain(self) -> None:
        """Stop readiness, answer every queued item, flush the ledger: nothing accepted is lost."""
        self.ready = False
        if self._shadows:  # copies already queued finish and are recorded; they have deadlines
            await asyncio.gather(*self._shadows, return_exceptions=True)
        await asyncio.gather(*(b.drain() for b in self.batchers.values()))
        await self.routes.close()
        if self.ledger is not None:
            await self.ledger.flush()
        self.slot_pool.shutdown(wait=True)
        for endpoint in self.endpoints.values():
            close_store = getattr(endpoint.cache.store, "close", None) if endpoint.cache else None
            if close_store is not None:  # disk and Redis stores hold a thread or connections
                await close_store()
        for batcher in self.batchers.values():
            close = getattr(batcher.model, "close", None)  # e.g. a model's worker processes
            if close is not None:
                await asyncio.to_thread(close)

    # ---- inside the path ---------------------------------------------------------------------

    def _check_fits(self, models: Sequence[str], items: int, field: str) -> None:
        """A request larger than a whole queue can never be served: 400, not a hopeless 503."""
        for model in models:
            max_queue = self.model_configs[model].batching.max_queue
            if items > max_queue:
                raise InvalidInput(
                    f"{items} items in one request; model {model} queues at most {max_queue}",
                    field=field,
                    hint="split the request, or raise batching.max_queue",
                )

    async def _call(self, model: str, items: Sequence[Item], deadline: float) -> list[ItemOutcome]:
        if not items:
            raise InvalidInput("no instances to predict", field="instances")
        if time.monotonic() >= deadline:
            raise DeadlineExceeded("the deadline passed before the request was queued")
        return await self.batchers[model].submit(items, deadline).wait()

    def _finish(self, outcomes: list[ItemOutcome]) -> Answer:
        return Answer(outcomes, math.fsum(o.cost_usd for o in outcomes))

    def record(
        self,
        endpoint: str,
        model: str,
        request_id: str,
        received: float,
        *,
        status: int,
        outcomes: Sequence[ItemOutcome] = (),
        cost_usd: float = 0.0,
        cache: str = "bypass",
        saved_usd: float = 0.0,
        key: str = "",
        route: str = "",
        tokens: int | None = None,
        degraded: bool = False,
        shadow: bool = False,
    ) -> None:
        """One ledger row and the request metrics, for every request past admission.

        A ``shadow`` row is shadow spend: in the ledger, not in the request metrics.

        ``tokens`` overrides the count from ``outcomes`` (upstream LLM calls have no outcomes).
        """
        now = time.monotonic()
        latency_s = now - received
        if not shadow:
            self.metrics.observe_request(endpoint, model, status, latency_s, cost_usd)
        if self.ledger is None:
            return
        batches = [o.batch for o in outcomes if o.batch is not None]
        name, _, version = model.partition(":")
        self.ledger.record(
            LedgerRow(
                ts=time.time(),
                request_id=request_id,
                endpoint=endpoint,
                model=name or "-",
                version=version or "-",
                items=len(outcomes),
                batch_size=sum(b.size for b in batches) / len(batches) if batches else 0.0,
                queue_ms=1000 * max((o.queue_s for o in outcomes), default=0.0),
                compute_ms=1000 * max((b.busy_s for b in batches), default=0.0),
                latency_ms=1000 * latency_s,
                cost_usd=cost_usd,
                status=status,
                cache=cache,
                saved_usd=saved_usd,
                key=key,
                tokens=tokens_of(outcomes) if tokens is None else tokens,
                route=route,
                degraded=degraded,
                shadow=shadow,
            )
        )

    def _on_batch(self, stats: BatchStats) -> None:
        self.metrics.observe_batch(stats)
        if stats.size and not stats.failed:
            mean = self._mean_item_cost.get(stats.model)
            cost = stats.cost_per_item_usd
            self._mean_item_cost[stats.model] = cost if mean is None else 0.9 * mean + 0.1 * cost
        if self.ledger is None:
            return
        name, _, version = stats.model.partition(":")
        queue_ms = [1000 * q for q in stats.queue_s]
        self.ledger.record_batch(
            BatchRow(
                ts=stats.started_at,
                model=name,
                version=version,
                size=stats.size,
                reason=stats.reason,
                busy_s=stats.busy_s,
                cost_usd=stats.cost_per_item_usd * stats.size,
                queue_ms_mean=sum(queue_ms) / len(queue_ms),
                queue_ms_max=max(queue_ms),
                failed=stats.failed,
                padded_size=stats.padded_size,
                padding_waste=stats.padding_waste,
            )
        )


def semantic_index(cache: CacheConfig) -> SemanticIndex | None:
    """A MiniLM-backed nearest-text index when the endpoint's cache asks for one."""
    semantic = cache.semantic
    if semantic is None or not semantic.enabled:
        return None
    try:
        from frugal.runtimes.minilm import make_model
    except ImportError as exc:
        raise ConfigError(
            "semantic caching needs the text extra", hint="pip install 'frugal[text]'"
        ) from exc
    embedder = make_model(backend=semantic.backend)
    return SemanticIndex(
        embedder.embed, threshold=semantic.threshold, max_entries=semantic.max_entries
    )


def read_warmup(path: Path, field: str) -> list[object]:
    """Instances of a warm-up JSONL: one instance a line, as in a request's ``instances``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the warm-up file: {exc}", field=field, file=str(path)
        ) from None
    instances = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            instances.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"line {number} is not JSON: {exc}", field=field, file=str(path)
            ) from None
    return instances


__all__ = ["Answer", "Engine", "read_warmup", "tokens_of"]
