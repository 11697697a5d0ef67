"""The ASGI app: its lifecycle, and the dispatcher that sends the two hot inference routes
straight to serving/inference.py and everything else to the Starlette route table
(serving/routes.py).

Only this folder imports Starlette; the Engine below it runs with no HTTP at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from frugal.access import AuditLog, KeyStore, RateLimiter
from frugal.accounting import QueuedLedger, ledger_location
from frugal.accounting.retention import prune
from frugal.config import FrugalConfig
from frugal.errors import FrugalError, HeadersTooLarge, Overloaded
from frugal.observability import BudgetCollector
from frugal.serving.admission import Admission
from frugal.serving.assembly import build_engine
from frugal.serving.engine import Engine
from frugal.serving.errors import CRASH_STATUS, NOT_READY_STATUS, crash_reply, reply_for, status_of
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
from frugal.serving.health_port import HealthPort
from frugal.serving.heap import freeze_startup_heap, frozen_objects, young_threshold
from frugal.serving.inference import Inference
from frugal.serving.intake import Intake
from frugal.serving.openai_api import LLMRoutes, build_clients
from frugal.serving.protocol import Limits
from frugal.serving.recorder import Finished
from frugal.serving.request_ids import new_request_id, request_id_from
from frugal.serving.routes import ControlRoutes
from frugal.serving.shedding import Shedder

if TYPE_CHECKING:
    from frugal.serving.grpc_server import GrpcServer

log = logging.getLogger("frugal.serving")
Scope = MutableMapping[str, Any]
RETENTION_INTERVAL_S = 3600.0
# Served by the dispatcher ahead of everything else (no auth, no body, no Starlette), so a
# probe costs the least the loop can do; with server.health_port, also from their own thread.
HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


class FrugalApp:
    """Builds the engine at start-up (models load off the loop) and answers the routes."""

    def __init__(
        self, config: FrugalConfig, *, engine: Engine | None = None, processes: int = 1,
        freeze_heap: bool = False,
    ) -> None:  # fmt: skip
        """``freeze_heap``: the process is this app's alone (``frugal serve``, a worker, a Ray
        replica): once ready, what start-up built leaves the cyclic collector's passes
        (serving/heap.py). Off for an app inside another program, such as a test's."""
        self.config = config
        self.processes = processes
        self.freeze_heap = freeze_heap
        self._engine = engine
        self._admission: Admission | None = None
        self._inference: Inference | None = None
        self._llm: LLMRoutes | None = None
        self._open = 0  # inference requests being answered, for server.max_concurrency
        self._background: list[asyncio.Task[None]] = []
        server = config.server
        self.intake = Intake(server.body_timeout_s, server.max_slow_bodies_per_client)
        self.protocol_limits = Limits(
            server.header_timeout_s, server.max_header_bytes, on_refusal=self._count_refusal
        )
        self.shedder = Shedder(server, self.protocol_limits)
        self._health_port: HealthPort | None = None
        self.grpc: GrpcServer | None = None  # with server.grpc_port (serving/grpc_server.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self.audit = AuditLog.from_config(config.ledger) if config.ledger.enabled else None
        routes = ControlRoutes(self)
        self.starlette = Starlette(
            routes=routes.table(),
            lifespan=self._lifespan,
            exception_handlers={HTTPException: routes.http_error, Exception: routes.crash},
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

    # The parts built in the lifespan; a route reached before it ran is a bug, not a request.

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

    @property
    def inference(self) -> Inference:
        if self._inference is None:
            raise RuntimeError("inference starts with the app's lifespan")
        return self._inference

    @property
    def llm(self) -> LLMRoutes:
        if self._llm is None:
            raise RuntimeError("the LLM routes start with the app's lifespan")
        return self._llm

    @property
    def is_ready(self) -> bool:
        """Loaded, not draining, and the ledger is writing (else answers would go unrecorded)."""
        engine = self._engine
        return engine is not None and engine.ready and engine.recorder.healthy

    # ---- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        self.shedder.lag.start()
        port = self.config.server.health_port
        if port is not None:  # up while models load: live at once, ready when they are
            self._health_port = HealthPort(self.config.server.host, port, self)
            self._health_port.start()
        if self._engine is None:
            self._engine = await asyncio.to_thread(
                functools.partial(build_engine, self.config, processes=self.processes)
            )
        self._watch_load()
        await self._start_admission()
        self._inference = Inference(self.config, self.engine, self.admission)
        self._llm = LLMRoutes(self.config, build_clients(self.config), intake=self.intake)
        if self.config.server.grpc_port is not None:
            await self._start_grpc()
        if self.audit is not None:
            await asyncio.to_thread(self._audit_model_loads)
        self._background.append(asyncio.create_task(self.engine.recorder.run()))
        if self.config.ledger.enabled:
            self._background.append(asyncio.create_task(self._retention_loop()))
        if self.engine.routes.splits:  # weights changed at run time, by any worker
            await self.engine.routes.load()
            self._background.append(asyncio.create_task(self.engine.routes.watch()))
        await self.engine.warm_up()
        if self.engine.controller is not None:  # frugal.yaml's `controller` (docs/controller.md)
            self._background.append(asyncio.create_task(self.engine.controller.run()))
        self.engine.ready = True
        ledger = self.engine.recorder.ledger
        if isinstance(ledger, QueuedLedger):
            ledger.mark_ready()  # start-up ends: the report bills it apart
        if self.config.ledger.enabled and self.config.ledger.url is not None:
            log.info("ledger: rows go to %s; the audit log and split weights set at run time "
                     "stay in %s on this machine", self.config.ledger.url,
                     self.config.ledger.path)  # fmt: skip
        if self.freeze_heap:
            frozen = freeze_startup_heap()
            log.debug(
                "froze %d start-up objects out of the garbage collector's passes; young "
                "collections every %d allocations",
                frozen,
                young_threshold(),
            )
        log.info("frugal ready: %d model version(s)", len(self.engine.batchers))
        try:
            yield
        finally:
            await self.shutdown()

    def _watch_load(self) -> None:
        limits = self.protocol_limits
        self.engine.metrics.watch_server({
            "frugal_open_requests": ("Inference requests being answered.", lambda: self._open),
            "frugal_bodies_reading": ("Request bodies still arriving.",
                                      lambda: self.intake.waiting),
            "frugal_connections": ("Open HTTP connections.", lambda: len(limits.connections)),
            "frugal_loop_lag_seconds": ("How far the event loop runs behind.",
                                        self.shedder.lag.now_s),
            "frugal_gc_frozen_objects": ("Objects start-up built, kept out of the garbage "
                                         "collector's passes once ready.", frozen_objects),
            "frugal_gc_young_threshold": ("Net new objects between the collector's young passes "
                                          "(raised once ready, serving/heap.py).",
                                          young_threshold),
        })  # fmt: skip

    async def _start_admission(self) -> None:
        auth = self.config.auth
        self._admission = Admission(
            KeyStore(auth.keys) if auth is not None else None,
            metrics=self.engine.metrics, budgets=self.engine.recorder.budgets,
            limiter=RateLimiter(processes=self.processes),
            reload_interval_s=auth.reload_interval_s if auth is not None else 1.0,
        )  # fmt: skip
        await self._admission.start()
        if self._admission.budgets is not None:  # frugal_budget_spent_ratio, read when scraped
            self.engine.metrics.registry.register(BudgetCollector(self._admission.budget_states))
        if auth is None:
            log.info("auth: off (no `auth` section); admin routes answer loopback clients only")

    async def _start_grpc(self) -> None:
        from frugal.serving.grpc_server import GrpcServer  # the `grpc` extra

        server = self.config.server
        assert server.grpc_port is not None
        self.grpc = GrpcServer(self, server.host, server.grpc_port, server.max_body_bytes)
        await self.grpc.start()

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
                    prune, ledger_location(self.config.ledger), older_than_s=older_than_s,
                    password_env=self.config.ledger.password_env,
                )  # fmt: skip
                if pruned.total:
                    log.info("retention: pruned %s", pruned)
            except Exception:
                log.exception("retention: pruning the ledger failed; will retry")
            await asyncio.sleep(RETENTION_INTERVAL_S)

    # ---- shutdown: bounded, and nothing accepted goes unanswered or unrecorded -------------

    def begin_drain(self) -> None:
        """The first SIGTERM/SIGINT: readiness off at once; what is open may take
        ``server.drain_timeout_s``, then it is answered 503 (and recorded)."""
        if self._engine is not None:
            self._engine.ready = False
        if self._loop is not None and self._drain_timer is None:
            self._loop.call_soon_threadsafe(self._arm_drain_bound)

    def _arm_drain_bound(self) -> None:
        bound_s = self.config.server.drain_timeout_s
        log.info("draining: readiness off; %d open request(s) have %g s to finish "
                 "(server.drain_timeout_s)", self._open, bound_s)  # fmt: skip
        self.intake.cut(after_s=bound_s)
        if self.grpc is not None:  # no new calls; open ones finish within the same bound
            self.grpc.begin_stop(bound_s)
        assert self._loop is not None
        self._drain_timer = self._loop.call_later(bound_s, self._cut, "drain_timeout_s passed")

    def cut_now(self) -> None:
        """A second signal: stop waiting; answer what is queued or still arriving 503 now."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._cut, "a second signal")

    def _cut(self, why: str) -> None:
        self.intake.cut()
        aborted = self._engine.abort_queued() if self._engine is not None else 0
        log.warning("shutdown: %s; %d queued item(s) and %d body read(s) answered 503, "
                    "%d request(s) still running", why, aborted, self.intake.waiting,
                    self._open)  # fmt: skip

    async def shutdown(self) -> None:
        """Answer what is queued, flush the ledger, stamp the run's end."""
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self.grpc is not None:  # its open calls are answered before the engine drains
            await self.grpc.stop(self.config.server.drain_timeout_s)
        await self.shedder.lag.stop()
        if self._health_port is not None:
            await asyncio.to_thread(self._health_port.stop)
        for task in self._background:
            task.cancel()
        if self._admission is not None:
            await self._admission.stop()
        if self._llm is not None:
            await self._llm.aclose()
        if self._engine is None:
            return
        await self.engine.drain()
        ledger = self.engine.recorder.ledger
        if isinstance(ledger, QueuedLedger):
            await asyncio.to_thread(ledger.close)

    # ---- the dispatcher: the hot routes on raw ASGI (see exchange.py) ------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path in HEALTH_PATHS and scope["method"] in ("GET", "HEAD"):
                await send_reply(send, self.health_reply(path))
                return
            if header_bytes(scope["headers"]) > self.config.server.max_header_bytes:
                await send_reply(send, self._headers_too_large())  # h11 (httptools: protocol.py)
                return
            route = match_inference_route(scope["method"], path)
            if route is not None:
                await self._inference_request(route, scope, receive, send)
                return
        await self.starlette(scope, receive, send)

    def health_reply(self, path: str) -> Reply:
        if path == "/v2/health/live":
            return json_reply({"live": True}, 200, {})
        ready = self.is_ready
        return json_reply({"ready": ready}, 200 if ready else NOT_READY_STATUS, {})

    async def _inference_request(
        self, route: tuple[str, dict[str, str]], scope: Scope, receive: Receive, send: Send
    ) -> None:
        exchange = Exchange.from_scope(scope, receive)
        client = scope["client"][0] if scope.get("client") else None
        exchange.intake, exchange.client = self.intake, client
        request_id = request_id_from(exchange.headers)
        refusal = self.shedder.refusal(self._open)
        try:
            if refusal is not None:  # before the body is read: the cheapest answer there is
                reply = self._shed(request_id, *refusal)
            else:
                self._open += 1
                try:
                    reply = await self.inference.handle(
                        route[0], exchange, route[1], client, request_id
                    )
                finally:
                    self._open -= 1
        except ClientGone:
            return
        except asyncio.CancelledError:  # uvicorn's last resort past the drain bound
            error = Overloaded("the server is shutting down", retry_after_s=1.0)
            self._record(request_id, status_of(error))
            with contextlib.suppress(Exception):
                await send_reply(send, reply_for(error, request_id))
            raise
        except Exception:  # never a traceback to the client; the log has it, and the ledger
            log.exception("request %s: unexpected error", request_id)
            self._record(request_id, CRASH_STATUS)
            reply = crash_reply(request_id)
        await send_reply(send, reply)

    def _record(self, request_id: str, status: int) -> None:
        """A row for an answer no route recorded (a refusal before the route, a crash)."""
        if self._engine is not None:
            self.engine.recorder.finish(Finished("-", "-", request_id, time.monotonic(), status))

    def _count_refusal(self, reason: str) -> None:
        if self._engine is not None:
            self.engine.metrics.observe_refusal(reason)

    def _headers_too_large(self) -> Reply:
        limit = self.config.server.max_header_bytes
        error = HeadersTooLarge(f"headers are over the {limit}-byte limit", field="headers")
        self._count_refusal("headers_too_large")
        return reply_for(error, new_request_id())  # the client's id is in the headers refused

    def _shed(self, request_id: str, reason: str, error: FrugalError) -> Reply:
        self._count_refusal(reason)
        self._record(request_id, status_of(error))
        reply = reply_for(error, request_id)
        if reason == "connections":  # the client should come back on a new connection
            reply.headers["connection"] = "close"
        return reply


def header_bytes(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(k) + len(v) for k, v in headers)


def create_app(config: FrugalConfig) -> FrugalApp:
    return FrugalApp(config)


__all__ = ["FrugalApp", "create_app"]
