"""The request path without HTTP: validate -> cache -> route -> batch, then the answer.

Protocol codecs turn wire formats into calls of ``Engine.predict`` / ``Engine.infer`` and back;
the same core would serve gRPC or an in-process caller. Start-up (loading models, building
routers and caches) is serving/assembly.py; booking what a request cost is serving/recorder.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from frugal.accounting import Pricer
from frugal.cache import CacheStage
from frugal.config import FrugalConfig, ModelConfig, ShadowConfig
from frugal.errors import DeadlineExceeded, FrugalError, InvalidInput, NotFound, Overloaded
from frugal.observability import ServingMetrics
from frugal.routing import Router, RouteRequest
from frugal.routing.shadow import compare
from frugal.runtimes import InputSchema
from frugal.serving.batcher import Batcher
from frugal.serving.controller import Controller
from frugal.serving.drift_check import DriftCheck
from frugal.serving.model_queue import ModelQueue
from frugal.serving.priority import TierOrder
from frugal.serving.recorder import Recorder, cost_of, tokens_of
from frugal.serving.route_control import RouteControl
from frugal.serving.shadow_calls import book_shadow, shadow_outcomes
from frugal.types import Item, ItemOutcome

log = logging.getLogger("frugal.engine")


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
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
        if len(self.outcomes) == 1:  # the common request: no generator
            return self.outcomes[0].error
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
        if len(self.outcomes) == 1:  # the common request: no generator, no join
            model = self.outcomes[0].model
            return "" if model in ("", "-") else model
        return ",".join(dict.fromkeys(o.model for o in self.outcomes if o.model not in ("", "-")))

    @property
    def tokens(self) -> int:
        return tokens_of(self.outcomes)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One served endpoint: its route, the schema of its items, its cache and shadow."""

    name: str
    router: Router
    schema: InputSchema
    timeout_ms: float  # a cascade's longest tier timeout: the whole request's budget
    max_queue: tuple[int, str]  # its smallest queue and whose: a larger request never fits
    cache: CacheStage | None = None
    shadow: ShadowConfig | None = None
    shadow_model: str = ""  # name:version
    drift: DriftCheck | None = None  # a cascade watched while it serves (drift_check.py)

    @property
    def model(self) -> str:
        """The model version named in replies before the route has chosen one."""
        return self.router.models[0]


class Engine:
    """Owns the batchers and endpoints of one serving process, and answers requests."""

    def __init__(
        self,
        config: FrugalConfig,
        *,
        batchers: dict[str, Batcher],
        endpoints: dict[str, Endpoint],
        recorder: Recorder,
        routes: RouteControl,
        slot_pool: ThreadPoolExecutor,
        warmup: dict[str, list[object]] | None = None,
        remote: Mapping[str, ModelQueue] | None = None,
        controller: Controller | None = None,
        tiers: TierOrder | None = None,
    ) -> None:
        self.config = config
        self.batchers = batchers  # the model versions run in this process
        # Every version's queue: the local batchers, and any whose model runs elsewhere
        # (``remote``: scale/'s Ray Serve replicas, each running a Batcher of its own).
        self.queues: dict[str, ModelQueue] = {**batchers, **(remote or {})}
        self.endpoints = endpoints
        self.recorder = recorder
        self.routes = routes
        self.slot_pool = slot_pool
        self.warmup = warmup or {}
        self.controller = controller  # frugal.yaml's `controller`: the app runs it
        self.tiers = tiers  # server.priority: a caller's tier -> its rank in the queues
        self.ready = False
        # Upstream LLMs (runtime openai) take no batcher or slot: serving/openai_api.py has them.
        self.model_configs: dict[str, ModelConfig] = {m.key: m for m in config.local_models}
        self.schemas = {key: InputSchema(cfg.inputs) for key, cfg in self.model_configs.items()}
        self._shadows: set[asyncio.Task[None]] = set()
        self._shadow_rng = random.Random()

    @property
    def metrics(self) -> ServingMetrics:
        return self.recorder.metrics

    @property
    def pricer(self) -> Pricer:
        """This process's share of the machine's price and slots."""
        return self.recorder.pricer

    # ---- the two entry points ----------------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        ep = self.endpoints.get(name)
        if ep is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise NotFound(f"no endpoint {name!r}; served: {known}")
        return ep

    async def predict(
        self,
        ep: Endpoint,
        instances: Sequence[object],
        *,
        deadline: float,
        user: str | None = None,
        session: str | None = None,
        tier: str | None = None,
        request_id: str = "",
        key: str = "",
    ) -> Answer:
        """Simple JSON: one item per instance, through the endpoint's cache and route."""
        _check_fits(len(instances), *ep.max_queue, "instances")
        items = [
            ep.schema.item_from_instance(x, f"instances[{i}]") for i, x in enumerate(instances)
        ]
        answer = await self._answer(ep, items, deadline, user, session, tier)
        if ep.shadow is not None and self._shadow_rng.random() < ep.shadow.sample:
            self._spawn_shadow(ep, items, answer, request_id)
        if ep.drift is not None:
            ep.drift.after_answer(self._call, items, answer.outcomes, request_id, key)
        return answer

    async def infer(
        self, model: str, tensors: Sequence[dict[str, object]], *, deadline: float,
        tier: str | None = None,
    ) -> Answer:  # fmt: skip
        """Open Inference Protocol: a model version addressed directly, no endpoint route."""
        items = self.schemas[model].items_from_tensors(tensors)
        _check_fits(len(items), self.model_configs[model].batching.max_queue, model, "inputs")
        outcomes = await self.call_model(model, items, deadline, tier)
        return Answer(outcomes, cost_of(outcomes))

    async def _answer(
        self, ep: Endpoint, items: list[Item], deadline: float, user: str | None,
        session: str | None, tier: str | None,
    ) -> Answer:  # fmt: skip
        scope = ep.cache.scope_of(user, session) if ep.cache is not None else None
        # With server.priority, every model call of this request queues at the caller's tier.
        call = self._call if self.tiers is None else functools.partial(
            self._call, rank=self.tiers.rank(tier)
        )  # fmt: skip
        if ep.cache is None or scope is None:
            routed = await ep.router.route(RouteRequest(ep.name, items, deadline, user, tier), call)
            cost = cost_of(routed.outcomes)
            return Answer(routed.outcomes, cost, route=">".join(routed.path),
                          degraded=routed.degraded)  # fmt: skip

        paths: list[str] = []
        degraded = False

        async def compute(misses: list[Item]) -> list[ItemOutcome]:
            nonlocal degraded
            request = RouteRequest(ep.name, misses, deadline, user, tier)
            routed = await ep.router.route(request, call)
            if routed.path:
                paths.append(">".join(routed.path))
            degraded = degraded or routed.degraded
            return routed.outcomes

        result = await ep.cache.serve(items, scope, compute)
        self.metrics.observe_cache(
            ep.name, ep.cache.config.scope, result.hits, len(items) - result.hits,
            result.saved_usd,
        )  # fmt: skip
        cost = cost_of(result.outcomes)
        return Answer(result.outcomes, cost, result.label, result.saved_usd, ";".join(paths),
                      degraded)  # fmt: skip

    # ---- shadow traffic: after the answer, never in its way ----------------------------------

    def _spawn_shadow(
        self, ep: Endpoint, items: list[Item], answer: Answer, request_id: str
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._shadow(ep, items, answer, request_id))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(
        self, ep: Endpoint, items: list[Item], answer: Answer, request_id: str
    ) -> None:
        """The shadow's copy: compared, counted, priced as shadow spend, then discarded."""
        assert ep.shadow is not None
        model = ep.shadow_model
        received = time.monotonic()
        deadline = self.deadline_for(model, received, None)
        outcomes = await shadow_outcomes(self._call, model, items, deadline, f"shadow on {ep.name}")
        if outcomes is None:
            return
        latency_s = time.monotonic() - received
        result = compare(answer.outcomes, outcomes, ep.shadow.tolerance)
        cost = cost_of(outcomes)
        self.metrics.routes.observe_shadow(
            ep.name, model, agreed=result.agreed, disagreed=result.disagreed,
            failed=result.failed, latency_s=latency_s, cost_usd=cost,
        )  # fmt: skip
        book_shadow(self.recorder, ep.name, model, request_id, received, outcomes)

    async def warm_up(self) -> None:
        """Compute each endpoint's warm-up instances into its cache; runs before readiness."""
        for name, instances in self.warmup.items():
            ep = self.endpoints[name]
            chunk = self.model_configs[ep.model].batching.max_batch_size
            failed = 0
            step = max(1, len(instances) // 10)
            for start in range(0, len(instances), chunk):
                answer = await self.predict(
                    ep, instances[start : start + chunk], deadline=time.monotonic() + 600
                )
                failed += sum(o.error is not None for o in answer.outcomes)
                done = min(len(instances), start + chunk)
                if done // step != start // step or done == len(instances):
                    log.info("warming up %s: %d/%d instances", name, done, len(instances))
            if failed:
                log.warning("warming up %s: %d instances failed and were not cached", name, failed)

    def resolve_model(self, name: str, version: str | None = None) -> str:
        """``name`` (its last declared version) or ``name`` + ``version`` -> the served key."""
        found = self.config.find_model(f"{name}:{version}" if version else name)
        if found is not None and found.upstream is not None:
            raise NotFound(
                f"model {found.key} is an upstream LLM, not served on this route",
                hint="call POST /v1/chat/completions or /v1/embeddings with its name",
            )
        if found is None:
            served = ", ".join(sorted(self.model_configs))
            what = f"{name} version {version}" if version else name
            raise NotFound(f"no model {what}; served: {served}")
        return found.key

    def endpoint_deadline(self, ep: Endpoint, received: float, header_ms: float | None) -> float:
        """A cascade gets the longest timeout of its tiers, for the whole request."""
        timeout_ms = ep.timeout_ms if header_ms is None else min(ep.timeout_ms, header_ms)
        return received + timeout_ms / 1000

    def deadline_for(self, model_key: str, received: float, header_ms: float | None) -> float:
        timeout_ms = self.model_configs[model_key].batching.timeout_ms
        if header_ms is not None:
            timeout_ms = min(timeout_ms, header_ms)
        return received + timeout_ms / 1000

    def abort_queued(self) -> int:
        """Past the drain bound (server.drain_timeout_s, or a second signal): every item still
        queued is answered 503 now instead of waiting its turn; items running finish."""
        error = Overloaded(
            "the server is shutting down and this request had not reached its model",
            retry_after_s=1.0, hint="send it again to another replica",
        )  # fmt: skip
        return sum(queue.abort_queued(error) for queue in self.queues.values())

    async def drain(self) -> None:
        """Stop readiness, answer every queued item, flush the ledger: nothing accepted is lost."""
        self.ready = False
        if self._shadows:  # copies already queued finish and are recorded; they have deadlines
            await asyncio.gather(*self._shadows, return_exceptions=True)
        for ep in self.endpoints.values():
            if ep.drift is not None:  # its shadow checks too
                await ep.drift.close()
        await asyncio.gather(*(q.drain() for q in self.queues.values()))
        await self.routes.close()
        if self.controller is not None:
            await self.controller.close()
        await self.recorder.flush()
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

    async def call_model(
        self, model: str, items: Sequence[Item], deadline: float, tier: str | None = None
    ) -> list[ItemOutcome]:
        """Items straight to one model version's queue, at the caller's tier (no endpoint
        route): the v2 route, and an LLM cascade's local tiers (serving/openai_api.py)."""
        rank = None if self.tiers is None else self.tiers.rank(tier)
        return await self._call(model, items, deadline, rank)

    async def _call(
        self, model: str, items: Sequence[Item], deadline: float, rank: int | None = None
    ) -> list[ItemOutcome]:
        """``rank``: the caller's tier with server.priority; None (shadows, drift checks,
        warm-up) queues as the lowest tier."""
        if not items:
            raise InvalidInput("no instances to predict", field="instances")
        if time.monotonic() >= deadline:
            raise DeadlineExceeded("the deadline passed before the request was queued")
        if self.tiers is None:
            return await self.queues[model].submit(items, deadline).wait()
        rank = self.tiers.lowest if rank is None else rank
        return await self.queues[model].submit(items, deadline, rank).wait()


def _check_fits(items: int, max_queue: int, model: str, field: str) -> None:
    """A request larger than a whole queue can never be served: 400, not a hopeless 503."""
    if items > max_queue:
        raise InvalidInput(
            f"{items} items in one request; model {model} queues at most {max_queue}",
            field=field,
            hint="split the request, or raise batching.max_queue",
        )


__all__ = ["Answer", "Endpoint", "Engine"]
