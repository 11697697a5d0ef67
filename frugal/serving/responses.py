"""JSON responses for the Starlette routes: the same bytes and headers as the raw-ASGI replies."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from frugal.serving.exchange import Reply, json_reply


def as_response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, reply.headers, media_type="application/json")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return as_response(json_reply(body, status, headers or {}))


__all__ = ["as_response", "json_response"]
