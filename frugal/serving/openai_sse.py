"""A whole chat completion replayed as OpenAI's ``chat.completion.chunk`` SSE events.

A cascade tier before the last is called without streaming (its gate judges the whole answer);
when that answer is kept for a client that asked for ``stream: true``, these events carry it in
the shape the OpenAI SDK's stream iterator reads: per choice one delta with the role, content
(and logprobs, tool calls or refusal when present), then its finish_reason; then a usage chunk
and ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

DELTA_FIELDS = ("content", "refusal", "function_call")


def cost_comment(cost_usd: float) -> bytes:
    """The stream's last line: the request's cost as an SSE comment, which clients skip."""
    return f": x-frugal-cost-usd {cost_usd:.6e}\n\n".encode()


def completion_events(body: dict[str, Any]) -> Iterator[bytes]:
    """SSE ``data:`` events for a ``chat.completion`` body, ending with ``data: [DONE]``."""
    base = {
        "id": body.get("id", "chatcmpl-frugal"),
        "object": "chat.completion.chunk",
        "created": body.get("created", 0),
        "model": body.get("model", ""),
    }
    if "system_fingerprint" in body:
        base["system_fingerprint"] = body["system_fingerprint"]
    choices = [c for c in body.get("choices") or () if isinstance(c, dict)]
    for position, choice in enumerate(choices):
        index = choice.get("index", position)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant")}
        delta |= {name: message[name] for name in DELTA_FIELDS if message.get(name) is not None}
        tool_calls = message.get("tool_calls")
        if isinstance(tool_calls, list) and tool_calls:
            delta["tool_calls"] = [
                {"index": i, **call} if isinstance(call, dict) else call
                for i, call in enumerate(tool_calls)
            ]
        first: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": None}
        if choice.get("logprobs") is not None:
            first["logprobs"] = choice["logprobs"]
        yield _event(base | {"choices": [first]})
        last = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}
        yield _event(base | {"choices": [last]})
    if isinstance(body.get("usage"), dict):
        yield _event(base | {"choices": [], "usage": body["usage"]})
    yield b"data: [DONE]\n\n"


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


__all__ = ["completion_events", "cost_comment"]
