"""Every route but the two hot inference routes, on Starlette: health, metadata, metrics, the
OpenAPI document, the OpenAI-compatible LLM routes and the admin API.

Each guarded route runs admission first; a FrugalError from either becomes its reply through
``reply_for``, like everywhere else in the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

import frugal
from frugal.access import KeyStore
from frugal.errors import FrugalError, InvalidInput, MethodNotAllowed, NotFound
from frugal.serving import admin
from frugal.serving.admission import Action, Caller
from frugal.serving.codecs import tensor_metadata
from frugal.serving.dashboard_routes import DashboardRoutes
from frugal.serving.errors import (
    CLIENT_GONE_STATUS,
    CRASH_STATUS,
    NOT_READY_STATUS,
    crash_reply,
    reply_for,
)
from frugal.serving.exchange import DUPLICATE_HEADER, Exchange, match_inference_route
from frugal.serving.openapi import openapi_document
from frugal.serving.recorder import Finished
from frugal.serving.request_ids import request_id_from
from frugal.serving.responses import as_response, json_response

if TYPE_CHECKING:
    from frugal.serving.app import FrugalApp

log = logging.getLogger("frugal.serving")


@dataclass(frozen=True, slots=True)
class Context:
    """What admission established about a request, for its handler."""

    request_id: str
    caller: Caller


Handler = Callable[[Request, Context], Awaitable[Response]]


def request_id_of(request: Request) -> str:
    return request_id_from(request.headers)


class ControlRoutes:
    """The route table; handlers reach the engine and admission through the app, which builds
    them in its lifespan."""

    def __init__(self, app: FrugalApp) -> None:
        self.app = app

    def table(self) -> list[Route]:
        m = "/v2/models/{name}"
        mv = "/v2/models/{name}/versions/{version}"
        guard = self._guarded
        return [
            Route("/v2", guard("read", self.server_metadata)),
            Route("/v2/health/live", self.health),
            Route("/v2/health/ready", self.health),
            Route(m, guard("read", self.model_metadata)),
            Route(mv, guard("read", self.model_metadata)),
            Route(f"{m}/ready", guard("read", self.model_ready)),
            Route(f"{mv}/ready", guard("read", self.model_ready)),
            Route(f"{m}/infer", self.inference, methods=["POST"]),
            Route(f"{mv}/infer", self.inference, methods=["POST"]),
            Route("/v1/endpoints", guard("read", self.list_endpoints)),
            Route("/v1/endpoints/{endpoint}/predict", self.inference, methods=["POST"]),
            Route(
                "/v1/endpoints/{endpoint}/feedback", guard("call", self.feedback), methods=["POST"]
            ),
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
            Route("/admin/controller", guard("admin", self.controller)),
            Route(
                "/admin/endpoints/{endpoint}/route",
                guard("admin", self.endpoint_route),
                methods=["GET", "POST"],
            ),
            *DashboardRoutes(self.app, guard).table(),  # /dashboard (dashboard_routes.py)
        ]

    def _guarded(
        self, action: Action, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        """Admission, then the handler; a FrugalError from either becomes its JSON answer."""

        async def guarded(request: Request) -> Response:
            request_id = request.state.request_id = request_id_of(request)
            admission = self.app.admission
            try:
                client = request.client.host if request.client else None
                authorization = admission.authorization_of(request.headers.getlist("authorization"))
                endpoint = request.path_params.get("endpoint") if action == "call" else None
                caller = admission.admit(authorization, action, endpoint=endpoint, client=client)
                return await handler(request, Context(request_id, caller))
            except ClientDisconnect:  # left before its body arrived: nobody to answer
                return Response(status_code=CLIENT_GONE_STATUS)
            except FrugalError as error:
                reply = reply_for(error, request_id)
                if reply.status >= CRASH_STATUS:
                    self._record_failure(request_id, reply.status)
                return as_response(reply)

        return guarded

    # ---- health and metadata -----------------------------------------------------------------

    async def server_metadata(self, request: Request, ctx: Context) -> Response:
        return json_response({"name": "frugal", "version": frugal.__version__, "extensions": []})

    async def health(self, request: Request) -> Response:
        """The dispatcher answers GET and HEAD first (FrugalApp.health_reply); this serves a
        caller that mounts the Starlette app alone."""
        return as_response(self.app.health_reply(request.url.path))

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(self.app.config))

    async def model_metadata(self, request: Request, ctx: Context) -> Response:
        engine = self.app.engine
        cfg = engine.model_configs[self._model_key(request)]
        versions = [m.version for m in self.app.config.models if m.name == cfg.name]
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
        name, _, version = self._model_key(request).partition(":")
        ready = self.app.engine.ready
        return json_response(
            {"name": name, "version": version, "ready": ready},
            200 if ready else NOT_READY_STATUS,
            {"x-request-id": ctx.request_id},
        )

    async def list_endpoints(self, request: Request, ctx: Context) -> Response:
        engine = self.app.engine
        listed = [{"name": n, "model": ep.model} for n, ep in engine.endpoints.items()]
        llm = self.app.llm
        listed += [{"name": n, "model": t.models[0]} for n, t in llm.targets.items()]
        return json_response(listed)

    async def metrics(self, request: Request, ctx: Context) -> Response:
        body = self.app.engine.metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4")

    def _model_key(self, request: Request) -> str:
        return self.app.engine.resolve_model(
            request.path_params["name"], request.path_params.get("version")
        )

    async def feedback(self, request: Request, ctx: Context) -> Response:
        """True labels of a served request's items, for the cascade's drift check."""
        name = request.path_params["endpoint"]
        ep = self.app.engine.endpoint(name)
        if ep.drift is None:
            raise NotFound(
                f"endpoint {name!r} has no drift check to take labels", field="endpoint",
                hint="add `drift` to its cascade route (docs/routing.md#drift-check-while-serving)",
            )  # fmt: skip
        given = await admin.json_body(request, {"request_id", "labels", "label"})
        request_id = given.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise InvalidInput("give the answered request's x-request-id", field="request_id")
        if ("label" in given) == ("labels" in given):
            raise InvalidInput("give `label` (a one-item request) or `labels` (one per item)",
                               field="labels")  # fmt: skip
        labels = given["labels"] if "labels" in given else [given["label"]]
        if not isinstance(labels, list):
            raise InvalidInput("a list, one label per item (null: unknown)", field="labels")
        for i, label in enumerate(labels):
            if isinstance(label, dict | list):
                raise InvalidInput("a label is a number, a string, a boolean or null",
                                   field=f"labels[{i}]")  # fmt: skip
        result = ep.drift.feedback(request_id, ctx.caller.name, labels)
        return json_response(result, headers={"x-request-id": ctx.request_id})

    # ---- inference for a caller that mounts ``.starlette`` alone -----------------------------

    async def inference(self, request: Request) -> Response:
        """The hot routes reach FrugalApp's raw ASGI path first; this serves the same routes
        to a caller that mounts the Starlette app alone."""
        route = match_inference_route(request.method, request.url.path)
        assert route is not None
        headers = dict(request.headers.items())
        if len(request.headers.getlist("authorization")) > 1:
            headers[DUPLICATE_HEADER] = "authorization"  # as Exchange.from_scope marks it
        client = request.client.host if request.client else None
        exchange = Exchange(headers, request.receive, intake=self.app.intake, client=client)
        reply = await self.app.inference.handle(
            route[0], exchange, route[1], client, request_id_from(exchange.headers)
        )
        return as_response(reply)

    # ---- OpenAI-compatible LLM routes (serving/openai_api.py; admission runs there) ----------

    async def chat_completions(self, request: Request) -> Response:
        return await self._llm_route("chat", request)

    async def embeddings(self, request: Request) -> Response:
        return await self._llm_route("embeddings", request)

    async def _llm_route(self, kind: Literal["chat", "embeddings"], request: Request) -> Response:
        return await self.app.llm.handle(kind, request, request_id_of(request),
                                         self.app.admission, self.app.engine)  # fmt: skip

    # ---- admin -------------------------------------------------------------------------------

    async def invalidate_cache(self, request: Request, ctx: Context) -> Response:
        return await admin.invalidate_cache(self.app.engine, request, ctx.request_id,
                                            self._auditor(ctx))  # fmt: skip

    async def cache_stats(self, request: Request, ctx: Context) -> Response:
        return admin.cache_stats(self.app.engine, ctx.request_id)

    async def keys(self, request: Request, ctx: Context) -> Response:
        """One route for both methods, so a 405 on it lists both in Allow."""
        if request.method == "POST":
            reply = await admin.create_key(self._key_store(), request, ctx.request_id,
                                           self._auditor(ctx))  # fmt: skip
            await self.app.admission.reload()
            return reply
        return await admin.list_keys(self._key_store(), ctx.request_id)

    async def revoke_key(self, request: Request, ctx: Context) -> Response:
        reply = await admin.revoke_key(self._key_store(), request.path_params["key"],
                                       ctx.request_id, self._auditor(ctx))  # fmt: skip
        await self.app.admission.reload()
        return reply

    async def rotate_key(self, request: Request, ctx: Context) -> Response:
        reply = await admin.rotate_key(self._key_store(), request.path_params["key"],
                                       ctx.request_id, self._auditor(ctx))  # fmt: skip
        await self.app.admission.reload()
        return reply

    async def endpoint_route(self, request: Request, ctx: Context) -> Response:
        """A split's weights; POST sets weights, promotes or rolls back (audited)."""
        engine = self.app.engine
        endpoint = request.path_params["endpoint"]
        if request.method == "POST":
            actor = ctx.caller.name or "loopback"
            return await admin.change_route(engine, endpoint, request, ctx.request_id, actor)
        return admin.route_state(engine, endpoint, ctx.request_id)

    async def controller(self, request: Request, ctx: Context) -> Response:
        """The policy controller's knobs, bounds, last readings and recent changes."""
        controller = self.app.engine.controller
        if controller is None:
            raise NotFound("no policy controller: frugal.yaml has no `controller` section",
                           hint="see docs/controller.md")  # fmt: skip
        return json_response(controller.state(), headers={"x-request-id": ctx.request_id})

    def _key_store(self) -> KeyStore:
        store = self.app.admission.store
        if store is None:
            raise NotFound("no keys: auth is off", hint="add an `auth` section (docs/security.md)")
        return store

    def _auditor(self, ctx: Context) -> admin.Auditor:
        """Appends an audit row off the loop, with the caller as actor."""
        audit = self.app.audit
        actor = ctx.caller.name or "loopback"

        async def write(action: str, target: str, **detail: Any) -> None:
            if audit is not None:
                await asyncio.to_thread(functools.partial(audit.append, actor, action, target,
                                                          **detail))  # fmt: skip

        return write

    # ---- Starlette's own refusals and crashes ------------------------------------------------

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's routing refusals (no such path: 404, wrong method: 405) as our errors."""
        assert isinstance(exc, HTTPException)
        error: FrugalError
        if exc.status_code == status.HTTP_404_NOT_FOUND:
            error = NotFound(exc.detail, field="path")
        elif exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            error = MethodNotAllowed(exc.detail, field="method")
        else:  # Starlette raises no other status from routing; any other is a bad request
            error = InvalidInput(exc.detail, field="request")
        reply = reply_for(error, request_id_of(request))
        reply.headers.update(exc.headers or {})  # a 405 carries Allow
        return as_response(reply)

    async def crash(self, request: Request, exc: Exception) -> Response:
        """An exception no handler turned into an answer: a 500 without a traceback, and still
        a ledger row and a count in ``frugal_requests_total``, as every other answer has."""
        request_id = getattr(request.state, "request_id", None) or request_id_of(request)
        log.exception("request %s: unexpected error", request_id)
        reply = crash_reply(request_id)
        self._record_failure(request_id, reply.status)
        return as_response(reply)

    def _record_failure(self, request_id: str, status: int) -> None:
        """Books a 5xx of a Starlette route (endpoint and model ``-``, as the inference path
        books a request refused before it named one). Never raises: it runs while failing."""
        try:
            recorder = self.app.engine.recorder
            recorder.finish(Finished("-", "-", request_id, time.monotonic(), status))
        except Exception:
            log.exception("request %s: booking its %d failed", request_id, status)


__all__ = ["Context", "ControlRoutes", "request_id_of"]
