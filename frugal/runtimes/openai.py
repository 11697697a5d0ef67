"""An OpenAI-compatible upstream: chat, embeddings and streaming over pooled httpx connections.

Upstream calls never take a batcher slot: a network wait is not compute, so they run on the event
loop behind a per-model semaphore (``upstream.max_concurrency``). Their cost is the provider's
per-token prices times the ``usage`` the upstream reports (DESIGN.md's cost model).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from frugal.config import ModelConfig, UpstreamConfig
from frugal.errors import ConfigError, InvalidInput, UpstreamFailed, UpstreamTimeout

log = logging.getLogger("frugal.upstream")
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
RETRY_AFTER_CAP_S = 60.0  # an upstream asking for longer is treated as a failure to fall back on
RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# The most tokens one call may report per field: far above any model's context (a few million at
# most today), far below SQLite's 2**63. A larger count is a broken upstream, not a bill to pay.
MAX_USAGE_TOKENS = 10**9
USAGE_FIELDS = ("prompt_tokens", "completion_tokens")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed, as the upstream reported them (or estimated, see ``exact``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_json(cls, usage: Any, *, model: str = "") -> Usage:
        """The upstream's ``usage`` object. Absent (or null): unknown, 0 tokens, not exact; a
        count that is absent or null is 0.

        A count that is not a whole number from 0 to MAX_USAGE_TOKENS is the upstream's fault:
        UpstreamFailed (502) naming the field, so a nonsense number never reaches the ledger,
        the budgets or the bill.
        """
        if usage is None:
            return cls(exact=False)
        who = f"model {model}: " if model else ""
        if not isinstance(usage, dict):
            raise UpstreamFailed(
                f"{who}the upstream's `usage` is not an object: {_shown(usage)}", field="usage"
            )
        counts = []
        for name in USAGE_FIELDS:
            value = usage.get(name)
            if value is None:
                value = 0
            # bool is an int to Python, never a token count.
            if isinstance(value, bool) or not isinstance(value, int):
                problem = "is not a whole number"
            elif not 0 <= value <= MAX_USAGE_TOKENS:
                problem = f"is outside 0..{MAX_USAGE_TOKENS:,}"
            else:
                counts.append(value)
                continue
            raise UpstreamFailed(
                f"{who}the upstream reported usage.{name} = {_shown(value)}, which {problem}",
                field=f"usage.{name}",
                hint="the upstream's answer was not used; check the upstream (base_url)",
            )
        return cls(counts[0], counts[1])


@dataclass(frozen=True, slots=True)
class Completion:
    """The upstream's JSON answer, what it consumed and cost, and how many attempts it took."""

    body: dict[str, Any]
    usage: Usage
    cost_usd: float
    attempts: int


@dataclass(slots=True)
class Stream:
    """An open streaming answer: iterate ``chunks`` (raw SSE bytes); ``usage`` fills as they
    pass (from the final usage chunk), ``text_chars`` counts the content for an estimate."""

    chunks: AsyncIterator[bytes]
    usage: Usage | None = None
    text_chars: int = 0
    attempts: int = 1


def price_usage(upstream: UpstreamConfig, usage: Usage) -> float:
    """prompt tokens x input price + completion tokens x output price."""
    return (
        usage.prompt_tokens * upstream.input_usd_per_1m
        + usage.completion_tokens * upstream.output_usd_per_1m
    ) / 1e6


def retry_after_s(response: httpx.Response) -> float | None:
    """The upstream's Retry-After (seconds or an HTTP date), or None."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_s(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base x 2^attempt)]."""
    return random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))


def check_upstream_keys(configs: list[ModelConfig]) -> None:
    """Refuse to start when an upstream's key variable is unset: before serving, not on the
    first request."""
    for config in configs:
        env = config.upstream.api_key_env if config.upstream is not None else None
        if env is not None and not os.environ.get(env):
            raise ConfigError(
                f"model {config.key}: the environment variable {env} is not set",
                field="upstream.api_key_env",
                hint=f"export {env}=<the upstream's API key> before `frugal serve`",
            )


class UpstreamClient:
    """One ``runtime: openai`` model version: its connections, semaphore, retries and prices."""

    def __init__(
        self, config: ModelConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        assert config.upstream is not None  # checked by config validation
        self.key = config.key
        self.upstream = config.upstream
        headers = {"content-type": "application/json"}
        env = self.upstream.api_key_env
        if env is not None:
            check_upstream_keys([config])
            headers["authorization"] = f"Bearer {os.environ[env]}"
        self.base_url = self.upstream.base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.upstream.timeout_s),
            limits=httpx.Limits(max_connections=self.upstream.max_concurrency),
            transport=transport,
        )
        self.semaphore = asyncio.Semaphore(self.upstream.max_concurrency)

    async def aclose(self) -> None:
        await self.http.aclose()

    def price(self, usage: Usage) -> float:
        return price_usage(self.upstream, usage)

    async def chat(self, body: dict[str, Any]) -> Completion:
        return await self._json_call("/chat/completions", body)

    async def embeddings(self, body: dict[str, Any]) -> Completion:
        return await self._json_call("/embeddings", body)

    async def _json_call(self, path: str, body: dict[str, Any]) -> Completion:
        payload = body | {"model": self.upstream.model}
        attempts = 0

        async def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            async with self.semaphore:
                return await self.http.post(self.base_url + path, content=orjson.dumps(payload))

        response = await self._with_retries(send)
        try:
            answer = response.json()
        except ValueError as exc:
            raise UpstreamFailed(
                f"model {self.key}: the upstream answered {response.status_code} with a body "
                "that is not JSON"
            ) from exc
        if not isinstance(answer, dict):
            raise UpstreamFailed(f"model {self.key}: the upstream's answer is not a JSON object")
        usage = Usage.from_json(answer.get("usage"), model=self.key)
        return Completion(answer, usage, self.price(usage), attempts)

    async def stream_chat(self, body: dict[str, Any]) -> Stream:
        """Opens the stream (retrying until the upstream answers 200), then yields its bytes."""
        options = body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        payload = body | {"model": self.upstream.model, "stream": True,
                          "stream_options": options | {"include_usage": True}}  # fmt: skip
        attempts = 0

        async def send() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            async with self.semaphore:
                request = self.http.build_request(
                    "POST", self.base_url + "/chat/completions", content=orjson.dumps(payload)
                )
                response = await self.http.send(request, stream=True)
                if response.status_code != 200:  # read the error body; the stream is not used
                    await response.aread()
                    await response.aclose()
                return response

        response = await self._with_retries(send)
        stream = Stream(_empty(), attempts=attempts)
        stream.chunks = self._relay(response, stream)
        return stream

    async def _relay(self, response: httpx.Response, stream: Stream) -> AsyncIterator[bytes]:
        """SSE events, passed through as they arrive; the usage chunk is read on the way."""
        try:
            async for line in response.aiter_lines():
                if line.startswith("data:"):  # a bad usage chunk raises UpstreamFailed here
                    _observe(stream, line[5:].strip(), self.key)
                yield (line + "\n").encode()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"model {self.key}: the upstream stream stalled") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"model {self.key}: the upstream stream broke: {exc}") from exc
        finally:
            await response.aclose()

    async def _with_retries(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """Retries 429, 5xx and timeouts with backoff (or the upstream's Retry-After)."""
        retries = self.upstream.max_retries
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = await send()
            except httpx.TimeoutException as exc:
                if last:
                    raise UpstreamTimeout(
                        f"model {self.key}: the upstream did not answer within "
                        f"{self.upstream.timeout_s:g} s ({retries + 1} attempts)",
                        hint="raise upstream.timeout_s or add a `fallback` model",
                    ) from exc
                log.info("upstream %s: timeout, retrying (attempt %d)", self.key, attempt + 1)
                await asyncio.sleep(backoff_s(attempt))
                continue
            except httpx.HTTPError as exc:
                if last:
                    raise UpstreamFailed(
                        f"model {self.key}: cannot reach the upstream: {exc}",
                        hint="check upstream.base_url",
                    ) from exc
                await asyncio.sleep(backoff_s(attempt))
                continue
            status = response.status_code
            if status == 200:
                return response
            if status in RETRIED_STATUSES and not last:
                wait_s = retry_after_s(response)
                if wait_s is not None and wait_s > RETRY_AFTER_CAP_S:
                    break
                log.info("upstream %s: %d, retrying (attempt %d)", self.key, status, attempt + 1)
                await asyncio.sleep(wait_s if wait_s is not None else backoff_s(attempt))
                continue
            raise self._refusal(response)
        raise self._refusal(response)

    def _refusal(self, response: httpx.Response) -> Exception:
        status = response.status_code
        message = _upstream_message(response)
        if status in (400, 413, 422):  # the caller's request: their error to fix
            return InvalidInput(f"the upstream refused the request: {message}", field="body")
        hint = None
        if status in (401, 403):
            hint = f"check the key in ${self.upstream.api_key_env or '(no api_key_env)'}"
        return UpstreamFailed(
            f"model {self.key}: the upstream answered {status}: {message}", hint=hint
        )


def _upstream_message(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            return message[:500]
    return response.text[:200] or response.reason_phrase


def _shown(value: object) -> str:
    """A value from an upstream, short enough for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _observe(stream: Stream, data: str, model: str) -> None:
    if not data or data == "[DONE]":
        return
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not isinstance(event, dict):
        return
    if event.get("usage") is not None:  # OpenAI sends "usage": null on every other chunk
        stream.usage = Usage.from_json(event["usage"], model=model)
    for choice in event.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            stream.text_chars += len(content)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def estimate_tokens(chars: int) -> int:
    """The documented approximation: one token per four characters, rounded up."""
    return math.ceil(chars / 4)


__all__ = [
    "MAX_USAGE_TOKENS",
    "Completion",
    "Stream",
    "UpstreamClient",
    "Usage",
    "backoff_s",
    "check_upstream_keys",
    "estimate_tokens",
    "price_usage",
    "retry_after_s",
]
