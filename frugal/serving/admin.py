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
    client = request.client.host if request.client else ""
    if client not in LOOPBACK:
        body = {"error": "admin routes answer loopback clients only", "field": "client",
                "request_id": request_id}  # fmt: skip
        return _json(body, 403, request_id)
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


__all__ = ["invalidate_cache"]
