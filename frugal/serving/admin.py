"""Admin routes: changes to a running server, for operators rather than clients."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from frugal.errors import InvalidInput, NotFound
from frugal.serving.engine import Engine

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _json(body: Any, status: int, request_id: str) -> Response:
    return Response(orjson.dumps(body), status, {"x-request-id": request_id},
                    media_type="application/json")  # fmt: skip


async def invalidate_cache(engine: Engine, request: Request, request_id: str) -> Response:
    """``{"endpoint"?, "model"?}``: drop those entries (both absent: all). Loopback only
    until API keys with an admin role exist."""
    refused = _loopback_only(request, request_id)
    if refused is not None:
        return refused
    raw = await request.body()
    try:
        given = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise InvalidInput("not valid JSON", field="body") from None
    if not isinstance(given, dict) or set(given) - {"endpoint", "model"}:
        raise InvalidInput("give an object with `endpoint` and/or `model`", field="body")
    endpoint, model = given.get("endpoint"), given.get("model")
    for field, value in (("endpoint", endpoint), ("model", model)):
        if value is not None and not isinstance(value, str):
            raise InvalidInput("must be a string", field=field)
    if endpoint is not None and endpoint not in engine.endpoints:
        raise NotFound(f"no endpoint {endpoint!r}")
    count = 0
    for name, ep in engine.endpoints.items():
        if ep.cache is not None and endpoint in (None, name):
            count += await ep.cache.store.invalidate(model=model)
    return _json({"invalidated": count}, 200, request_id)


def cache_stats(engine: Engine, request: Request, request_id: str) -> Response:
    """Per cached endpoint: its store's size and churn, and hits, misses and dollars saved."""
    refused = _loopback_only(request, request_id)
    if refused is not None:
        return refused
    body = {}
    for name, ep in engine.endpoints.items():
        if ep.cache is None:
            continue
        stats = ep.cache.store.stats()
        body[name] = {
            "store": ep.cache.config.store,
            "scope": ep.cache.config.scope,
            "entries": stats.entries,
            "bytes": stats.bytes,
            "evictions": stats.evictions,
            "expirations": stats.expirations,
            "errors": stats.errors,
            "hits": ep.cache.hits,
            "misses": ep.cache.misses,
            "refreshed_early": ep.cache.refreshed,
            "saved_usd": ep.cache.saved_usd,
        }
    return _json(body, 200, request_id)


def _loopback_only(request: Request, request_id: str) -> Response | None:
    client = request.client.host if request.client else ""
    if client in LOOPBACK:
        return None
    body = {"error": "admin routes answer loopback clients only", "field": "client",
            "request_id": request_id}  # fmt: skip
    return _json(body, 403, request_id)


__all__ = ["cache_stats", "invalidate_cache"]
