"""Reading request bodies from clients that may be slow on purpose.

A client that sends one byte every few seconds holds a connection, a concurrency slot and, at
shutdown, the whole process. Every body read here runs under a deadline (``server.
body_timeout_s``; a 408 past it), the bodies still arriving from one address are counted against
``server.max_slow_bodies_per_client`` (a 429 past it), and at shutdown the drain bound cuts every
read still waiting (a 503). uvicorn has a keep-alive timeout but none for a request's body.

Only bodies still arriving after ``SLOW_AFTER_S`` count against the per-address limit: a burst
of ordinary clients whose bodies come a round trip after their headers never does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from frugal.errors import Overloaded, PayloadTooLarge, RateLimited, RequestTimeout

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client disconnected before its body arrived: there is nobody to answer."""


SLOW_AFTER_S = 1.0  # a body still arriving after this long counts as a slow one


class Intake:
    def __init__(
        self, body_timeout_s: float = 30.0, max_slow_per_client: int | None = None
    ) -> None:
        self.body_timeout_s = body_timeout_s
        self.max_slow_per_client = max_slow_per_client
        self._slow: dict[str, int] = {}  # client address -> its bodies past SLOW_AFTER_S
        self._timeouts: set[asyncio.Timeout] = set()
        self._cut_at: float | None = None  # loop time: the drain bound, once shutdown began
        self.waiting = 0  # bodies being read now, for the drain's log line

    def cut(self, after_s: float = 0.0) -> None:
        """Shutdown's bound: reads still waiting ``after_s`` from now end with a 503."""
        loop = asyncio.get_running_loop()
        at = loop.time() + after_s
        self._cut_at = at if self._cut_at is None else min(self._cut_at, at)
        for timeout in self._timeouts:
            when = timeout.when()
            if when is None or when > self._cut_at:
                timeout.reschedule(self._cut_at)

    async def read(self, receive: Receive, client: str | None, limit: int) -> bytes:
        """The whole body; RequestTimeout, RateLimited (too many slow ones from this address),
        Overloaded (shutting down), PayloadTooLarge or ClientGone."""
        body = _Body(limit)
        if _arrived(receive):  # nearly always: the whole body came with the headers
            await body.read_one(receive)
            if body.done:
                return body.joined()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.waiting += 1
        try:
            # Nearly every body is here already or within a round trip: read it under the short
            # bound only. Progress survives the cancel (uvicorn keeps what arrived meanwhile).
            if await self._within(body, receive, started + SLOW_AFTER_S):
                return body.joined()
            self._check_cut(loop)
            key = client or "-"
            slow = self._slow.get(key, 0)
            if self.max_slow_per_client is not None and slow >= self.max_slow_per_client:
                raise RateLimited(
                    f"{slow} request bodies from {key} are arriving slowly "
                    "(server.max_slow_bodies_per_client)", retry_after_s=1.0,
                    hint="send each body at once, or fewer requests at a time",
                )  # fmt: skip
            self._slow[key] = slow + 1
            try:
                if await self._within(body, receive, started + self.body_timeout_s):
                    return body.joined()
            finally:
                left = self._slow[key] - 1
                if left:
                    self._slow[key] = left
                else:
                    del self._slow[key]
            self._check_cut(loop)
            raise RequestTimeout(
                f"the body did not arrive within {self.body_timeout_s:g} s "
                "(server.body_timeout_s)", field="body",
            )  # fmt: skip
        finally:
            self.waiting -= 1

    async def _within(self, body: _Body, receive: Receive, deadline: float) -> bool:
        """Read on until the body is complete (True) or ``deadline`` / the cut passes (False)."""
        if self._cut_at is not None:
            deadline = min(deadline, self._cut_at)
        try:
            async with asyncio.timeout_at(deadline) as timeout:
                self._timeouts.add(timeout)
                try:
                    await body.read(receive)
                finally:
                    self._timeouts.discard(timeout)
        except TimeoutError:
            return False
        return True

    def _check_cut(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._cut_at is not None and loop.time() >= self._cut_at:
            raise Overloaded(
                "the server is shutting down and the body had not arrived "
                "(server.drain_timeout_s)", retry_after_s=1.0,
                hint="send the request again to another replica",
            )  # fmt: skip


def _arrived(receive: Receive) -> bool:
    """True when ``receive`` is uvicorn's and a message is already waiting for it, so awaiting
    it cannot block: no deadline is needed for that read, and setting one (an asyncio.Timeout
    and its timer) was about a twentieth of the request path's CPU. Any other ``receive``
    (another server, a test's): False, and every read runs under the deadline."""
    event = getattr(getattr(receive, "__self__", None), "message_event", None)
    return isinstance(event, asyncio.Event) and event.is_set()


class _Body:
    """The chunks read so far: kept across a cancelled wait."""

    __slots__ = ("chunks", "done", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.done = False

    async def read(self, receive: Receive) -> None:
        while not self.done:
            await self.read_one(receive)

    async def read_one(self, receive: Receive) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(f"body is over the {self.limit}-byte limit", field="body")
        self.chunks.append(chunk)
        self.done = not message.get("more_body", False)

    def joined(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


__all__ = ["ClientGone", "Intake"]
