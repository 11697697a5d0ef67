"""A real local HTTP server speaking the OpenAI chat and embeddings API: the upstream LLM double.

The one stand-in DEVELOPERS.md allows (a paid external API). Answers are deterministic (the
reply echoes the last user message) and carry ``usage``; knobs make it fail (500 N times, 429
with Retry-After, sleep past a timeout) and stream SSE with a final usage chunk. Asked for
``logprobs: true`` it returns one per word: HARD_LOGPROB when the last message contains "hard"
(an answer the model is unsure of), else EASY_LOGPROB; ``no_logprobs`` ignores the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from frugal.optimize import free_port
from tests.waiting import eventually

EASY_LOGPROB = -0.05
HARD_LOGPROB = -2.0


@dataclass
class Knobs:
    fail_500: int = 0  # the next N calls answer 500
    fail_429: int = 0  # the next N calls answer 429 with Retry-After
    retry_after: str = "1"
    sleep_s: float = 0.0  # every call waits this long before answering
    chunk_delay_s: float = 0.0  # streaming: the wait between chunks
    require_key: str | None = None  # answer 401 unless Authorization is Bearer this
    no_logprobs: bool = False  # an upstream that never returns logprobs, even when asked
    usage: Any = None  # not None: the `usage` every answer (and usage chunk) reports, as given
    wrong_when_hard: bool = False  # a weaker model: "i do not know" when the message says "hard"


@dataclass
class LLMDouble:
    """``with LLMDouble() as up:`` serves on ``up.url`` (``.../v1``); ``up.calls`` counts."""

    knobs: Knobs = field(default_factory=Knobs)
    calls: list[dict[str, Any]] = field(default_factory=list)  # request bodies, in order
    call_times: list[float] = field(default_factory=list)  # monotonic arrival of each call
    streams_finished: int = 0

    def __post_init__(self) -> None:
        app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ])  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LLMDouble:
        self.thread.start()
        # uvicorn exposes no start event: watch its flag, or the thread ending without it.
        eventually(lambda: self.server.started or not self.thread.is_alive(),
                   f"the upstream double to start on port {self.port}", timeout_s=60)  # fmt: skip
        if not self.server.started:
            raise RuntimeError("the upstream double did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    async def _admit(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        body = orjson.loads(await request.body())
        self.calls.append(body)
        self.call_times.append(time.monotonic())
        knobs = self.knobs
        if knobs.require_key is not None:
            if request.headers.get("authorization") != f"Bearer {knobs.require_key}":
                return body, _json({"error": {"message": "bad key"}}, 401)
        if knobs.sleep_s:
            await asyncio.sleep(knobs.sleep_s)
        if knobs.fail_500 > 0:
            knobs.fail_500 -= 1
            return body, _json({"error": {"message": "upstream exploded"}}, 500)
        if knobs.fail_429 > 0:
            knobs.fail_429 -= 1
            return body, _json({"error": {"message": "slow down"}}, 429,
                               {"retry-after": knobs.retry_after})  # fmt: skip
        return body, None

    async def chat(self, request: Request) -> Response:
        body, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        words = reply_words(body)
        last = str(body["messages"][-1].get("content") or "")
        if self.knobs.wrong_when_hard and "hard" in last.lower():
            words = ["i", "do", "not", "know"]
        usage = usage_of(body, words) if self.knobs.usage is None else self.knobs.usage
        logprobs = None
        if body.get("logprobs") is True and not self.knobs.no_logprobs:
            logprobs = logprobs_of(body, words)
        if body.get("stream"):
            include = (body.get("stream_options") or {}).get("include_usage", False)
            events = self._stream(body, words, usage if include else None, logprobs)
            return StreamingResponse(events, media_type="text/event-stream")
        return _json({
            "id": "chatcmpl-double", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": logprobs,
                         "message": {"role": "assistant", "content": " ".join(words)}}],
            "usage": usage,
        })  # fmt: skip

    async def _stream(
        self,
        body: dict[str, Any],
        words: list[str],
        usage: Any,
        logprobs: dict[str, Any] | None,
    ) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-double", "object": "chat.completion.chunk", "created": 0,
                "model": body["model"]}  # fmt: skip
        for i, word in enumerate(words):
            if self.knobs.chunk_delay_s:
                await asyncio.sleep(self.knobs.chunk_delay_s)
            delta = {"content": word if i == 0 else f" {word}"}
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            if logprobs is not None:
                choice["logprobs"] = {"content": [logprobs["content"][i]]}
            yield _event(base | {"choices": [choice]})
        yield _event(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if usage is not None:
            yield _event(base | {"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
        self.streams_finished += 1

    async def embeddings(self, request: Request) -> Response:
        body, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": vector_of(str(t))}
                for i, t in enumerate(texts)]  # fmt: skip
        tokens = sum(math.ceil(len(str(t)) / 4) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        if self.knobs.usage is not None:
            usage = self.knobs.usage
        return _json({"object": "list", "data": data, "model": body["model"],
                      "usage": usage})  # fmt: skip


def reply_words(body: dict[str, Any]) -> list[str]:
    """The deterministic reply: "echo" then the last message's words, cut at max_tokens."""
    last = body["messages"][-1].get("content") or ""
    words = ["echo", *str(last).split()]
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    return words[:limit] if isinstance(limit, int) else words


def logprobs_of(body: dict[str, Any], words: list[str]) -> dict[str, Any]:
    """One token per word; every logprob is HARD_LOGPROB if the last message says "hard"."""
    last = str(body["messages"][-1].get("content") or "")
    logprob = HARD_LOGPROB if "hard" in last.lower() else EASY_LOGPROB
    tokens = [word if i == 0 else f" {word}" for i, word in enumerate(words)]
    return {"content": [{"token": t, "logprob": logprob, "bytes": list(t.encode()),
                         "top_logprobs": []} for t in tokens]}  # fmt: skip


def usage_of(body: dict[str, Any], words: list[str]) -> dict[str, int]:
    """Prompt tokens: ceil(chars / 4) of all message text; completion: one per word."""
    chars = sum(len(str(m.get("content") or "")) for m in body["messages"])
    prompt = math.ceil(chars / 4)
    return {"prompt_tokens": prompt, "completion_tokens": len(words),
            "total_tokens": prompt + len(words)}  # fmt: skip


def vector_of(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b / 255 for b in digest[:8]]


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
