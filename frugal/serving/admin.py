"""Admin routes: changes to a running server, for operators rather than clients.

Admission has already checked the caller (an admin key, or a loopback client while auth is off);
every change is written to the audit log with that caller as its actor.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response

from frugal.access import ROLES, KeyStore
from frugal.errors import InvalidInput, NotFound, PayloadTooLarge
from frugal.serving.engine import Engine
from frugal.serving.exchange import check_json_content_type
from frugal.serving.responses import json_response


class Auditor(Protocol):
    async def __call__(self, action: str, target: str, **detail: Any) -> None: ...


def _json(body: Any, status: int, request_id: str) -> Response:
    return json_response(body, status, {"x-request-id": request_id})


# Admin bodies are a few fields; a cap this size (not server.max_body_bytes, sized for model
# inputs) keeps an admin route from buffering megabytes (docs/security.md).
ADMIN_MAX_BODY_BYTES = 64 * 1024


async def read_capped(request: Request, limit: int = ADMIN_MAX_BODY_BYTES) -> bytes:
    """The body, refused with 413 from Content-Length before reading, or as soon as more than
    ``limit`` bytes arrived: never read past the cap. A client that leaves mid-body raises
    Starlette's ClientDisconnect (the route table answers nobody)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit of "
                              "admin routes", field="body")  # fmt: skip
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit of admin routes",
                                  field="body")  # fmt: skip
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """A small JSON object body (capped like admin bodies), unknown fields refused by name."""
    return await _body(request, allowed)


async def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await read_capped(request)
    if raw:
        check_json_content_type(request.headers.get("content-type"))
    try:
        given = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise InvalidInput("not valid JSON", field="body") from None
    if not isinstance(given, dict):
        raise InvalidInput("give a JSON object", field="body")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field; allowed: {', '.join(sorted(allowed))}",
                           field=unknown[0])  # fmt: skip
    return given


async def invalidate_cache(
    engine: Engine, request: Request, request_id: str, audit: Auditor
) -> Response:
    """``{"endpoint"?, "model"?}``: drop those entries (both absent: all)."""
    given = await _body(request, {"endpoint", "model"})
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
    await audit("cache.invalidate", endpoint or "*", model=model, invalidated=count)
    return _json({"invalidated": count}, 200, request_id)


def cache_stats(engine: Engine, request_id: str) -> Response:
    """Per cached endpoint: its store's size and churn, and hits, misses and dollars saved."""
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


def route_state(engine: Engine, endpoint: str, request_id: str) -> Response:
    return _json(engine.routes.state(endpoint), 200, request_id)


async def change_route(
    engine: Engine, endpoint: str, request: Request, request_id: str, actor: str
) -> Response:
    """``{"weights": {version: w}}``, ``{"promote": version}`` or ``{"rollback": true}``.

    RouteControl audits the change itself: automatic rollbacks take the same path.
    """
    engine.routes.state(endpoint)  # NotFound before the body is read
    given = await _body(request, {"weights", "promote", "rollback"})
    return _json(await engine.routes.change(endpoint, given, actor), 200, request_id)


async def list_keys(store: KeyStore, request_id: str) -> Response:
    keys = await asyncio.to_thread(store.list)
    return _json([k.public() for k in keys], 200, request_id)


_KEY_FIELDS = {"name", "role", "tier", "endpoints", "rps", "budget_usd_day", "tokens_day"}


async def create_key(
    store: KeyStore, request: Request, request_id: str, audit: Auditor
) -> Response:
    """The one answer that carries the secret: it is not stored and cannot be read again."""
    given = await _body(request, _KEY_FIELDS)
    name, role = given.get("name"), given.get("role", "user")
    if not isinstance(name, str):
        raise InvalidInput("a key needs a `name` (string)", field="name")
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    tier = given.get("tier")
    if tier is not None and not isinstance(tier, str):
        raise InvalidInput("must be a string", field="tier")
    endpoints = given.get("endpoints")
    if endpoints is not None and not (
        isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints)
    ):
        raise InvalidInput("must be a list of endpoint names", field="endpoints")
    limits: dict[str, float | None] = {}
    for field in ("rps", "budget_usd_day", "tokens_day"):
        value = given.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidInput("must be a number", field=field)
        limits[field] = value
    # The store checks each limit's bounds (a tokens_day of 2**63 would overflow SQLite).
    key, secret = await asyncio.to_thread(
        lambda: store.create(
            name, role, tier=tier, endpoints=endpoints, rps=limits["rps"],
            budget_usd_day=limits["budget_usd_day"], tokens_day=limits["tokens_day"],
        )
    )  # fmt: skip
    await audit(
        "key.create", key.name, role=key.role, tier=key.tier, endpoints=endpoints, rps=key.rps,
        budget_usd_day=key.budget_usd_day, tokens_day=key.tokens_day,
    )  # fmt: skip
    return _json(key.public() | {"secret": secret}, 201, request_id)


async def revoke_key(store: KeyStore, name: str, request_id: str, audit: Auditor) -> Response:
    key = await asyncio.to_thread(store.revoke, name)
    await audit("key.revoke", name)
    return _json(key.public(), 200, request_id)


async def rotate_key(store: KeyStore, name: str, request_id: str, audit: Auditor) -> Response:
    key, secret = await asyncio.to_thread(store.rotate, name)
    await audit("key.rotate", name)
    return _json(key.public() | {"secret": secret}, 200, request_id)


__all__ = [
    "ADMIN_MAX_BODY_BYTES",
    "Auditor",
    "cache_stats",
    "change_route",
    "create_key",
    "invalidate_cache",
    "list_keys",
    "read_capped",
    "revoke_key",
    "rotate_key",
    "route_state",
]
