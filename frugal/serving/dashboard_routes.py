"""``/dashboard``: the live cost page, its files, and the JSON stats it polls.

Access (docs/security.md#dashboard): the stats carry spend, so they need a viewer or admin key
when auth is on (``metrics`` in admission's table: a user key gets 403). The page and its files
hold no data; with auth on they load without a key, and the page sends the key it is given (a
login field, or a ``#key=`` fragment, which browsers never send to a server, so no log holds it)
as a bearer header on each poll. With auth off every dashboard route answers loopback clients
only, as the admin routes do.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from frugal.errors import Forbidden, FrugalError, InvalidInput
from frugal.observability import (
    CONTENT_SECURITY_POLICY,
    WINDOWS,
    LedgerSource,
    StatsSource,
    dashboard_asset,
    dashboard_page,
    parse_group,
    parse_window,
)
from frugal.serving.admission import LOOPBACK, Action
from frugal.serving.errors import reply_for
from frugal.serving.request_ids import request_id_from
from frugal.serving.responses import as_response, json_response

if TYPE_CHECKING:
    from frugal.serving.app import FrugalApp
    from frugal.serving.routes import Context, Handler

Guard = Callable[[Action, "Handler"], Callable[[Request], Awaitable[Response]]]
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


class DashboardRoutes:
    """The three dashboard routes; the stats source is built on first use (after start-up)."""

    def __init__(self, app: FrugalApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard
        self.started = time.time()
        self._stats: StatsSource | None = None

    def table(self) -> list[Route]:
        return [
            Route("/dashboard", self._open(self.page)),
            Route("/dashboard/static/{file}", self._open(self.asset)),
            Route("/dashboard/stats", self.guard("metrics", self.stats)),
        ]

    def _open(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """The page and its files: no key needed (they hold no data), loopback only while
        auth is off."""

        async def served(request: Request) -> Response:
            try:
                self._check_loopback(request)
                return await handler(request)
            except FrugalError as error:
                return as_response(reply_for(error, request_id_from(request.headers)))

        return served

    def _check_loopback(self, request: Request) -> None:
        client = request.client.host if request.client else None
        if not self.app.admission.enabled and client not in LOOPBACK:
            raise Forbidden(
                "the dashboard answers loopback clients only while auth is off",
                hint="add an `auth` section and open it with a viewer or admin key "
                "(docs/dashboard.md)",
            )

    async def page(self, request: Request) -> Response:
        return Response(dashboard_page(), media_type="text/html; charset=utf-8",
                        headers=PAGE_HEADERS)  # fmt: skip

    async def asset(self, request: Request) -> Response:
        body, content_type = dashboard_asset(request.path_params["file"])
        return Response(body, headers={"content-type": content_type,
                                       "x-content-type-options": "nosniff",
                                       "cache-control": "public, max-age=3600"})  # fmt: skip

    async def stats(self, request: Request, ctx: Context) -> Response:
        self._check_loopback(request)
        window = parse_window(_one(request, "window"))
        by = parse_group(_one(request, "by"))
        document = await self.source().document(window, by)
        return json_response(document, headers={"x-request-id": ctx.request_id,
                                                "cache-control": "no-store"})  # fmt: skip

    def source(self) -> StatsSource:
        if self._stats is None:
            ledger = self.app.config.ledger
            location = (ledger.url if ledger.url is not None else ledger.path) \
                if ledger.enabled else None  # fmt: skip
            self._stats = StatsSource(LedgerSource(location, ledger.password_env),
                                      live=self.live, budgets=self.budgets)  # fmt: skip
        return self._stats

    def live(self) -> dict[str, Any]:
        """What only this process knows, read on the loop (with ``--workers`` N, one worker's)."""
        engine = self.app.engine
        caches = {}
        for name, ep in engine.endpoints.items():
            if ep.cache is None:
                continue
            looked = ep.cache.hits + ep.cache.misses
            caches[name] = {"hits": ep.cache.hits, "misses": ep.cache.misses,
                            "hit_ratio": ep.cache.hits / looked if looked else 0.0,
                            "saved_usd": ep.cache.saved_usd}  # fmt: skip
        return {
            "uptime_s": time.time() - self.started,
            "processes": self.app.processes,
            "queue_depth": {model: q.queue_depth for model, q in engine.queues.items()},
            "cache": caches,
        }

    def budgets(self) -> dict[str, float]:
        """Each active key's dollars a day (in a worker thread: it reads the key store)."""
        store = self.app.admission.store
        if store is None:
            return {}
        return {k.name: k.budget_usd_day for k in store.list(include_revoked=False)
                if k.budget_usd_day is not None}  # fmt: skip


def _one(request: Request, name: str) -> str | None:
    """A query parameter given at most once (None: absent); twice is refused, naming it."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidInput(f"{name} is given {len(values)} times; give it once", field=name)
    return values[0] if values else None


def dashboard_openapi_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The three routes in /openapi.json (``errors``: the document's common error answers);
    the page and its files carry ``security: []``, the stats the document's bearer key."""
    forbidden = {"403": errors["403"]}
    windows = {"name": "window", "in": "query", "required": False,
               "schema": {"enum": list(WINDOWS)}}  # fmt: skip
    groups = {"name": "by", "in": "query", "required": False,
              "schema": {"enum": ["endpoint", "model", "version"]}}  # fmt: skip
    tag = ["observability"]
    return {
        "/dashboard": {"get": {
            "summary": "The live cost dashboard page (docs/dashboard.md)", "tags": tag,
            "security": [],
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}
            | forbidden}},
        "/dashboard/static/{file}": {"get": {
            "summary": "The page's script, style, uPlot and its licence", "tags": tag,
            "security": [],
            "parameters": [{"name": "file", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file", "content": {
                "text/javascript": {}, "text/css": {}, "text/plain": {}}}}
            | forbidden | {"404": errors["404"]}}},
        "/dashboard/stats": {"get": {
            "summary": "The dashboard's numbers for a window (viewer or admin)", "tags": tag,
            "parameters": [windows, groups],
            "responses": {"200": {"description": "the stats document (docs/dashboard.md)",
                                  "content": {"application/json": {"schema": {
                                      "type": "object",
                                      "required": ["window", "totals", "series", "live"]}}}}}
            | errors}},
    }  # fmt: skip


__all__ = ["DashboardRoutes", "dashboard_openapi_paths"]
