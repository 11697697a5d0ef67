"""The ASGI app: Open Inference Protocol v2 and simple JSON routes over one Engine.

Only this folder imports Starlette; the Engine below it runs with no HTTP at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import frugal
from frugal.access import AuditLog, Capture, KeyStore, RateLimiter
from frugal.accounting import Pricer, SqliteLedger, resolve_pricer
from frugal.accounting.budgets import BudgetBook
from frugal.accounting.ledger import PayloadRow
from frugal.accounting.retention import prune
from frugal.config import FrugalConfig
from frugal.errors import (
    FrugalError,
    HeadersTooLarge,
    InvalidInput,
    ModelFailed,
    NotFound,
    Overloaded,
)
from frugal.observability import ServingMetrics
from frugal.routing import build_llm_cascades
from frugal.runtimes import load_model
from frugal.runtimes.openai import check_upstream_keys
from frugal.serving import admin
from frugal.serving.admission import Action, Admission, Caller
from frugal.serving.codecs import (
    decode_infer_request,
    decode_predict_request,
    encode_infer_response,
    encode_predict_response,
    tensor_metadata,
)
from frugal.serving.engine import Answer, Engine
from frugal.serving.errors import error_body, error_headers, status_of
from frugal.serving.exchange import (
    ClientGone,
    Exchange,
    Receive,
    Reply,
    Send,
    json_reply,
    match_inference_route,
    send_reply,
)
from frugal.serving.openai_api import LLMRoutes, build_clients
from frugal.serving.openapi import openapi_document

log = logging.getLogger("frugal.serving")
Scope = MutableMapping[str, Any]
RETENTION_INTERVAL_S = 3600.0


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


# A random per-process prefix and a counter: unique across processes and restarts, and cheap
# (os.urandom per request cost ~90 us on a VM whose getrandom goes through virtio-rng).
_ID_PREFIX = os.urandom(4).hex()
_id_counter = itertools.count()


def request_id_from(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is sane, else a new one."""
    given = headers.get("x-request-id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return f"{_ID_PREFIX}{next(_id_counter):08x}"


def request_id_of(request: Request) -> str:
    return request_id_from(request.headers)


@dataclass(frozen=True, slots=True)
class Context:
    """What admission established about a request, for its handler."""

    request_id: str
    caller: Caller


Handler = Callable[[Request, Context], Awaitable[Response]]


class FrugalApp:
    """Builds the engine at start-up (models load off the loop) and answers the routes."""

    def __init__(
        self, config: FrugalConfig, *, engine: Engine | None = None, processes: int = 1
    ) -> None:
        self.config = config
        self.processes = processes
        self._engine = engine
        self._admission: Admission | None = None
        self._llm: LLMRoutes | None = None
        self._open = 0  # inference requests being answered, for server.max_concurrency
        self._background: list[asyncio.Task[None]] = []
        self.audit = AuditLog(config.ledger.path) if config.ledger.enabled else None
        self.captures = {
            e.name: Capture(e.capture) for e in config.endpoints if e.capture is not None
        }
        self.starlette = Starlette(
            routes=self._routes(),
            lifespan=self._lifespan,
            exception_handlers={HTTPException: self._http_error, Exception: self._crash},
        )
        self.asgi: Callable[[Scope, Receive, Send], Awaitable[None]] = self
        cors = config.server.cors
        if cors is not None:
            from starlette.middleware.cors import CORSMiddleware

            self.asgi = CORSMiddleware(
                self, allow_origins=cors.allow_origins, allow_methods=cors.allow_methods,
                allow_headers=cors.allow_headers, max_age=cors.max_age_s,
                expose_headers=["x-request-id", "x-frugal-cost-usd", "x-frugal-model",
                                "x-frugal-cache", "retry-after"],
            )  # fmt: skip

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the engine starts with the app's lifespan")
        return self._engine

    @property
    def admission(self) -> Admission:
        if self._admission is None:
            raise RuntimeError("admission starts with the app's lifespan")
        return self._admission

    # ---- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self._engine is None:
            self._engine = await asyncio.to_thread(
                functools.partial(build_engine, self.config, processes=self.processes)
            )
        await self._start_admission()
        self._llm = LLMRoutes(self.config, build_clients(self.config))
        if self.audit is not None:
            await asyncio.to_thread(self._audit_model_loads)
        if self.config.ledger.enabled:
            self._background.append(asyncio.create_task(self._retention_loop()))
        if self.engine.routes.splits:  # weights changed at run time, by any worker
            await self.engine.routes.load()
            self._background.append(asyncio.create_task(self.engine.routes.watch()))
        await self.engine.warm_up()
        self.engine.ready = True
        if isinstance(self.engine.ledger, SqliteLedger):
            self.engine.ledger.mark_ready()  # start-up ends: the report bills it apart
        log.info("frugal ready: %d model version(s)", len(self.engine.batchers))
        try:
            yield
        finally:
            await self.shutdown()

    async def _start_admission(self) -> None:
        auth = self.config.auth
        store = KeyStore(auth.keys) if auth is not None else None
        budgets = None
        ledger = self.engine.ledger
        if store is not None and isinstance(ledger, SqliteLedger):
            budgets = BudgetBook(ledger.path, ledger.run_id)
        self._admission = Admission(
            store, metrics=self.engine.metrics, budgets=budgets,
            limiter=RateLimiter(processes=self.processes),
            reload_interval_s=auth.reload_interval_s if auth is not None else 1.0,
        )  # fmt: skip
        await self._admission.start()
        if store is None:
            log.info("auth: off (no `auth` section); admin routes answer loopback clients only")

    def _audit_model_loads(self) -> None:
        assert self.audit is not None
        for cfg in self.config.models:
            self.audit.append("server", "model.load", cfg.key, name=cfg.name,
                              version=cfg.version, runtime=cfg.runtime, sha256=cfg.sha256,
                              path=str(cfg.path) if cfg.path else None)  # fmt: skip

    async def _retention_loop(self) -> None:
        """Expired payloads, and rows past ``ledger.retention_days``, go at start and hourly."""
        days = self.config.ledger.retention_days
        older_than_s = days * 86400.0 if days is not None else None
        while True:
            try:
                pruned = await asyncio.to_thread(
                    prune, self.config.ledger.path, older_than_s=older_than_s
                )
                if pruned.total:
                    log.info("retention: pruned %s", pruned)
            except Exception:
                log.exception("retention: pruning the ledger failed; will retry")
            await asyncio.sleep(RETENTION_INTERVAL_S)

    async def shutdown(self) -> None:
        """Answer what is queued, flush the ledger, stamp the run's end."""
        for task in self._background:
            task.cancel()
        if self._admission is not None:
            await self._admission.stop()
        if self._llm is not None:
            await self._llm.aclose()
        if self._engine is None:
            return
        await self.engine.drain()
        if isinstance(self.engine.ledger, SqliteLedger):
            await asyncio.to_thread(self.engine.ledger.close)

    # ---- routes ----------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        m = "/v2/models/{name}"
        mv = "/v2/models/{name}/versions/{version}"
        guard = self._guarded
        return [
            Route("/v2", guard("read", self.server_metadata)),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            Route(m, guard("read", self.model_metadata)),
            Route(mv, guard("read", self.model_metadata)),
            Route(f"{m}/ready", guard("read", self.model_ready)),
            Route(f"{mv}/ready", guard("read", self.model_ready)),
            Route(f"{m}/infer", self._starlette_inference, methods=["POST"]),
            Route(f"{mv}/infer", self._starlette_inference, methods=["POST"]),
            Route("/v1/endpoints", guard("read", self.list_endpoints)),
            Route("/v1/endpoints/{endpoint}/predict", self._starlette_inference, methods=["POST"]),
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/metrics", guard("metrics", self.metrics)),
            Route("/openapi.json", self.openapi),
            Route(
                "/admin/cache/invalidate", guard("admin", self.invalidate_cache), methods=["POST"]
            ),
            Route("/admin/cache/stats", guard("admin", self.cache_stats)),
            Route("/admin/keys", guard("admin", self.keys), methods=["GET", "POST"]),
            Route("/admin/keys/{key}/revoke", guard("admin", self.revoke_key), methods=["POST"]),
            Route("/admin/keys/{key}/rotate", guard("admin", self.rotate_key), methods=["POST"]),
            Route(
                "/admin/endpoints/{endpoint}/route",
                guard("admin", self.endpoint_route),
                methods=["GET", "POST"],
            ),
        ]

    def _guarded(
        self, action: Action, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        """Admission, then the handler; a FrugalError from either becomes its JSON answer."""

        async def guarded(request: Request) -> Response:
            request_id = request_id_of(request)
            try:
                client = request.client.host if request.client else None
                caller = self.admission.admit(
                    request.headers.get("authorization"), action, client=client
                )
                return await handler(request, Context(request_id, caller))
            except FrugalError as error:
                headers = {"x-request-id": request_id} | error_headers(error)
                return json_response(error_body(error, request_id), status_of(error), headers)

        return guarded

    async def server_metadata(self, request: Request, ctx: Context) -> Response:
        return json_response({"name": "frugal", "version": frugal.__version__, "extensions": []})

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self._engine is not None and self.engine.ready
        return json_response({"ready": ready}, 200 if ready else 503)

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(self.config))

    async def model_metadata(self, request: Request, ctx: Context) -> Response:
        key = self._model_key(request)
        cfg = self.engine.model_configs[key]
        versions = [m.version for m in self.config.models if m.name == cfg.name]
        return json_response(
            {
                "name": cfg.name,
                "versions": versions,
                "platform": cfg.runtime,
                "inputs": [tensor_metadata(s) for s in cfg.inputs],
                "outputs": [],
            },
            headers={"x-request-id": ctx.request_id},
        )

    async def model_ready(self, request: Request, ctx: Context) -> Response:
        key = self._model_key(request)
        name, _, version = key.partition(":")
        ready = self.engine.ready
        return json_response(
            {"name": name, "version": version, "ready": ready},
            200 if ready else 503,
            {"x-request-id": ctx.request_id},
        )

    async def list_endpoints(self, request: Request, ctx: Context) -> Response:
        listed = [
            {"name": n, "model": self.engine.endpoint_model(n)} for n in self.engine.endpoints
        ]
        if self._llm is not None:  # LLM endpoints: their first choice of model
            listed += [{"name": n, "model": t.models[0]} for n, t in self._llm.targets.items()]
        return json_response(listed)

    async def chat_completions(self, request: Request) -> Response:
        """OpenAI-compatible chat over upstream LLMs (openai_api.py; admission runs there)."""
        return await self._llm_route("chat", request)

    async def embeddings(self, request: Request) -> Response:
        return await self._llm_route("embeddings", request)

    async def _llm_route(self, kind: Literal["chat", "embeddings"], request: Request) -> Response:
        if self._llm is None:
            raise RuntimeError("the LLM routes start with the app's lifespan")
        return await self._llm.handle(
            kind, request, request_id_of(request), self.admission, self.engine
        )

    async def metrics(self, request: Request, ctx: Context) -> Response:
        return Response(self.engine.metrics.render(), media_type="text/plain; version=0.0.4")

    async def invalidate_cache(self, request: Request, ctx: Context) -> Response:
        return await admin.invalidate_cache(self.engine, request, ctx.request_id,
                                            self._auditor(ctx))  # fmt: skip

    async def cache_stats(self, request: Request, ctx: Context) -> Response:
        return admin.cache_stats(self.engine, ctx.request_id)

    async def keys(self, request: Request, ctx: Context) -> Response:
        """One route for both methods, so a 405 on it lists both in Allow."""
        if request.method == "POST":
            return await self.create_key(request, ctx)
        return await admin.list_keys(self._key_store(), ctx.request_id)

    async def create_key(self, request: Request, ctx: Context) -> Response:
        reply = await admin.create_key(self._key_store(), request, ctx.request_id,
                                       self._auditor(ctx))  # fmt: skip
        await self.admission.reload()
        return reply

    async def revoke_key(self, request: Request, ctx: Context) -> Response:
        reply = await admin.revoke_key(self._key_store(), request.path_params["key"],
                                       ctx.request_id, self._auditor(ctx))  # fmt: skip
        await self.admission.reload()
        return reply

    async def rotate_key(self, request: Request, ctx: Context) -> Response:
        reply = await admin.rotate_key(self._key_store(), request.path_params["key"],
                                       ctx.request_id, self._auditor(ctx))  # fmt: skip
        await self.admission.reload()
        return reply

    async def endpoint_route(self, request: Request, ctx: Context) -> Response:
        """A split's weights; POST sets weights, promotes or rolls back (audited)."""
        endpoint = request.path_params["endpoint"]
        if request.method == "POST":
            actor = ctx.caller.name or "loopback"
            return await admin.change_route(self.engine, endpoint, request, ctx.request_id, actor)
        return admin.route_state(self.engine, endpoint, ctx.request_id)

    def _key_store(self) -> KeyStore:
        store = self.admission.store
        if store is None:
            raise NotFound("no keys: auth is off", hint="add an `auth` section (docs/security.md)")
        return store

    def _auditor(self, ctx: Context) -> admin.Auditor:
        """Appends an audit row off the loop, with the caller as actor."""
        audit = self.audit
        actor = ctx.caller.name or "loopback"

        async def write(action: str, target: str, **detail: Any) -> None:
            if audit is not None:
                await asyncio.to_thread(functools.partial(audit.append, actor, action, target,
                                                          **detail))  # fmt: skip

        return write

    # ---- inference: the hot routes, on raw ASGI (see exchange.py) -----------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if header_bytes(scope["headers"]) > self.config.server.max_header_bytes:
                await send_reply(send, self._headers_too_large(scope))
                return
            route = match_inference_route(scope["method"], scope["path"])
            if route is not None:
                exchange = Exchange.from_scope(scope, receive)
                request_id = request_id_from(exchange.headers)
                exchange.headers["x-request-id"] = request_id  # 500s name the same id
                client = scope["client"][0] if scope.get("client") else None
                limit = self.config.server.max_concurrency
                try:
                    if limit is not None and self._open >= limit:
                        reply = self._over_concurrency(request_id, limit)
                    else:
                        self._open += 1
                        try:
                            reply = await self._inference(route[0], exchange, route[1], client)
                        finally:
                            self._open -= 1
                except ClientGone:
                    return
                except Exception:  # never a traceback to the client; the log has it
                    request_id = exchange.headers.get("x-request-id", "-")
                    log.exception("request %s: unexpected error", request_id)
                    body = {"error": "internal error; the server log has the details",
                            "request_id": request_id}  # fmt: skip
                    reply = json_reply(body, 500, {"x-request-id": request_id})
                await send_reply(send, reply)
                return
        await self.starlette(scope, receive, send)

    def _headers_too_large(self, scope: Scope) -> Reply:
        limit = self.config.server.max_header_bytes
        error = HeadersTooLarge(f"headers are over the {limit}-byte limit", field="headers")
        self.admission.metrics.observe_refusal("headers_too_large")
        request_id = request_id_from({})  # the client's id is in the headers refused
        return json_reply(error_body(error, request_id), 431, {"x-request-id": request_id})

    def _over_concurrency(self, request_id: str, limit: int) -> Reply:
        error = Overloaded(
            f"{limit} requests are already open (server.max_concurrency)",
            retry_after_s=1.0,
            hint="retry after Retry-After seconds, or raise server.max_concurrency",
        )
        self.engine.record("-", "-", request_id, time.monotonic(), status=503)
        headers = {"x-request-id": request_id} | error_headers(error)
        return json_reply(error_body(error, request_id), 503, headers)

    async def _inference(
        self, kind: str, exchange: Exchange, params: dict[str, str], client: str | None
    ) -> Reply:
        target = params["endpoint"] if kind == "predict" else params["name"]
        try:  # before the body is read: a refused request costs nothing and is not recorded
            caller = self.admission.admit(
                exchange.headers.get("authorization"), "call", endpoint=target, client=client
            )
        except FrugalError as error:
            request_id = request_id_from(exchange.headers)
            headers = {"x-request-id": request_id} | error_headers(error)
            return json_reply(error_body(error, request_id), status_of(error), headers)
        if kind == "predict":
            return await self.predict(exchange, params["endpoint"], caller)
        return await self.infer(exchange, params["name"], params.get("version"), caller)

    async def _starlette_inference(self, request: Request) -> Response:
        """The same routes for a caller that mounts ``.starlette`` alone."""
        route = match_inference_route(request.method, request.url.path)
        assert route is not None
        exchange = Exchange({k: v for k, v in request.headers.items()}, request.receive)
        client = request.client.host if request.client else None
        reply = await self._inference(route[0], exchange, route[1], client)
        return Response(reply.body, reply.status, reply.headers, media_type="application/json")

    async def infer(
        self, exchange: Exchange, name: str, version: str | None, caller: Caller
    ) -> Reply:
        received = time.monotonic()
        request_id = request_id_from(exchange.headers)
        engine = self.engine
        model = "-"
        try:
            model = engine.resolve_model(name, version)
            label = f"v2:{model}"
            deadline = engine.deadline_for(model, received, deadline_header(exchange.headers))
            body = await exchange.read_json(self.config.server.max_body_bytes)
            given_id, tensors = decode_infer_request(body)
            answer = await engine.infer(model, tensors, deadline=deadline)
            error = answer.first_error
            if error is not None:  # v2 tensors are all or nothing
                return self._refuse(label, model, request_id, received, error, caller, answer)
            model_name, _, model_version = model.partition(":")
            out = encode_infer_response(model_name, model_version, given_id, answer.outcomes)
            return self._answer(label, request_id, received, answer, out, caller)
        except FrugalError as error:
            return self._refuse(f"v2:{model}", model, request_id, received, error, caller)

    async def predict(self, exchange: Exchange, endpoint: str, caller: Caller) -> Reply:
        received = time.monotonic()
        request_id = request_id_from(exchange.headers)
        engine = self.engine
        model = "-"
        try:
            model = engine.endpoint_model(endpoint)
            deadline = engine.endpoint_deadline(
                endpoint, received, deadline_header(exchange.headers)
            )
            body = await exchange.read_json(self.config.server.max_body_bytes)
            instances = decode_predict_request(body)
            # A key's tier is the caller's; the header counts only without auth (no elevation).
            tier = caller.tier if caller.key is not None else exchange.headers.get("x-frugal-tier")
            answer = await engine.predict(
                endpoint, instances, deadline=deadline,
                user=caller.user_scope(exchange.headers.get("x-frugal-user")),
                session=exchange.headers.get("x-frugal-session"), tier=tier,
                request_id=request_id,
            )  # fmt: skip
            error = answer.first_error
            if error is not None and answer.all_failed:
                failed_by = answer.model_header or model  # a split: the version that failed
                return self._refuse(
                    endpoint, failed_by, request_id, received, error, caller, answer
                )
            out = encode_predict_response(answer.outcomes)
            reply = self._answer(endpoint, request_id, received, answer, out, caller)
            capture = self.captures.get(endpoint)
            if capture is not None and reply.status == 200 and capture.wanted():
                self._capture(capture, endpoint, request_id, caller, body, out)
            return reply
        except FrugalError as error:
            label = endpoint if endpoint in engine.endpoints else "-"
            return self._refuse(label, model, request_id, received, error, caller)

    def _capture(
        self, capture: Capture, endpoint: str, request_id: str, caller: Caller, request: Any,
        response: Any,
    ) -> None:  # fmt: skip
        ledger = self.engine.ledger
        if ledger is None:
            return
        now = time.time()
        ledger.record_payload(PayloadRow(
            ts=now, request_id=request_id, endpoint=endpoint, key=caller.name,
            request=capture.encode(request), response=capture.encode(response),
            expires=now + capture.retention_s,
        ))  # fmt: skip

    # ---- answers ---------------------------------------------------------------------------

    def _answer(
        self, label: str, request_id: str, received: float, answer: Answer, body: Any,
        caller: Caller,
    ) -> Reply:  # fmt: skip
        model = answer.model_header
        headers = _cost_headers(request_id, model, answer.cost_usd) | {
            "x-frugal-cache": answer.cache
        }
        try:  # encode first: an answer that cannot be sent must not be recorded as a 200
            reply = json_reply(body, 200, headers)
        except TypeError as exc:
            error = ModelFailed(
                f"model {model} returned a value that is not JSON: {exc}",
                hint="return numbers, strings, lists, dicts or numpy values from predict_batch",
            )
            return self._refuse(label, model, request_id, received, error, caller, answer)
        self.engine.record(
            label, model, request_id, received, status=200, outcomes=answer.outcomes,
            cost_usd=answer.cost_usd, cache=answer.cache, saved_usd=answer.saved_usd,
            key=caller.name, route=answer.route, degraded=answer.degraded,
        )  # fmt: skip
        self.admission.charge(caller, answer.cost_usd, answer.tokens)
        return reply

    def _refuse(
        self, label: str, model: str, request_id: str, received: float, error: FrugalError,
        caller: Caller, answer: Answer | None = None,
    ) -> Reply:  # fmt: skip
        status = status_of(error)
        cost = answer.cost_usd if answer is not None else 0.0
        outcomes = answer.outcomes if answer is not None else ()
        self.engine.record(
            label, model, request_id, received, status=status, outcomes=outcomes, cost_usd=cost,
            key=caller.name,
        )  # fmt: skip
        if answer is not None:  # the model ran: what it consumed is spent
            self.admission.charge(caller, cost, answer.tokens)
        if status == 500:
            log.warning("request %s: %s", request_id, error.message)
        headers = _cost_headers(request_id, model, cost) | error_headers(error)
        return json_reply(error_body(error, request_id), status, headers)

    def _model_key(self, request: Request) -> str:
        return self.engine.resolve_model(
            request.path_params["name"], request.path_params.get("version")
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        request_id = request_id_of(request)
        body = {"error": exc.detail, "field": "path", "request_id": request_id}
        if exc.status_code == 405:
            body["field"] = "method"
        headers = dict(exc.headers or {}) | {"x-request-id": request_id}  # 405 carries Allow
        return json_response(body, exc.status_code, headers)

    async def _crash(self, request: Request, exc: Exception) -> Response:
        request_id = request_id_of(request)
        log.exception("request %s: unexpected error", request_id)
        body = {"error": "internal error; the server log has the details", "request_id": request_id}
        return json_response(body, 500, {"x-request-id": request_id})


def header_bytes(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(k) + len(v) for k, v in headers)


def deadline_header(headers: dict[str, str]) -> float | None:
    raw = headers.get("x-frugal-deadline-ms")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InvalidInput(
            "must be a positive number of milliseconds", field="x-frugal-deadline-ms"
        )
    return value


def _cost_headers(request_id: str, model: str, cost_usd: float) -> dict[str, str]:
    return {
        "x-request-id": request_id,
        "x-frugal-model": model,
        "x-frugal-cost-usd": f"{cost_usd:.6e}",
    }


def build_engine(config: FrugalConfig, *, processes: int = 1) -> Engine:
    """Load and verify every model, open the ledger: the blocking part of start-up.

    With ``processes`` server processes on one machine, each is billed its share of the price
    and gets its share of the slots, so the ledger bills the machine once.
    """
    started_at = time.time()  # billed from before the models load: start-up costs money too
    pricer = resolve_pricer(config.instance)
    if processes > 1:
        pricer = Pricer(
            price_usd_per_hour=pricer.price_usd_per_hour / processes,
            slots=max(1, pricer.slots // processes),
            instance=pricer.instance,
        )
    check_upstream_keys([m for m in config.models if m.runtime == "openai"])
    build_llm_cascades(config)  # an unimportable scorer of an LLM cascade stops the start here
    models = {m.key: load_model(m) for m in config.models if m.runtime != "openai"}
    ledger = None
    if config.ledger.enabled:
        ledger = SqliteLedger(config.ledger.path, flush_interval_ms=config.ledger.flush_interval_ms,
                              heartbeat_s=config.ledger.heartbeat_s)  # fmt: skip
        ledger.open(
            instance=pricer.instance,
            price_usd_per_hour=pricer.price_usd_per_hour,
            slots=pricer.slots,
            started_at=started_at,
        )
    metrics = ServingMetrics(slots=pricer.slots, price_usd_per_hour=pricer.price_usd_per_hour)
    return Engine(config, models, pricer=pricer, ledger=ledger, metrics=metrics)


def create_app(config: FrugalConfig) -> FrugalApp:
    return FrugalApp(config)


__all__ = ["FrugalApp", "build_engine", "create_app"]
