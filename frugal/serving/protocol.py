"""uvicorn's httptools protocol, with the two bounds it lacks against hostile clients.

Why by hand: uvicorn (0.30-0.55) has a keep-alive timeout, but no deadline for a request's
headers (a client that opens a connection and sends one header byte a minute holds it forever),
and it buffers every header before the app can count them (an 8 MB header is read in full, then
refused). Here the headers must arrive within ``server.header_timeout_s`` of the connection
opening or of the request's first byte (408 otherwise), and their bytes are counted as they
arrive (431 past ``server.max_header_bytes``, without reading further). Both answers are the
server's usual JSON errors, written straight to the socket, and the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from frugal.errors import FrugalError, HeadersTooLarge, RequestTimeout
from frugal.serving.errors import reply_for
from frugal.serving.request_ids import new_request_id

log = logging.getLogger("frugal.serving")


LATE_TIMER_S = 0.5  # a header deadline firing this late means the loop, not the client, is slow


class Limits:
    """What the protocol enforces for one app (its ``protocol_limits``), and where refusals
    are counted; ``connections`` is uvicorn's set of open ones, for the app's shedding."""

    def __init__(
        self, header_timeout_s: float = 10.0, max_header_bytes: int = 16_384,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.header_timeout_s = header_timeout_s
        self.max_header_bytes = max_header_bytes
        self.on_refusal = on_refusal
        self.connections: Collection[object] = ()


DEFAULT_LIMITS = Limits()


def limits_of(app: Any) -> Limits:
    """The app's limits, through whatever middleware wraps it (CORS: ``.app``)."""
    for _ in range(8):
        limits = getattr(app, "protocol_limits", None)
        if isinstance(limits, Limits):
            return limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return DEFAULT_LIMITS


class FrugalHttpProtocol(HttpToolsProtocol):
    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits_of(self.app)
        self.limits.connections = self.connections
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_due = 0.0
        # Loop time since which headers are awaited (the connection opened, or a request's first
        # byte came); None while a request is answered or the connection idles after one.
        self._waiting_since: float | None = None
        self._refused = False
        self._in_request = False  # a request's first byte arrived, its headers have not
        self._raw_bytes = 0

    # ---- the header deadline ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        self._arm_header_timer(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    # One timer per connection, re-armed when it fires, not one per request: a request only
    # stores the time its first byte came (two attribute writes on the hot path).

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._raw_bytes = 0
        self._in_request = True
        self._waiting_since = self.loop.time()

    def _arm_header_timer(self, after_s: float) -> None:
        self._header_due = self.loop.time() + after_s
        self._header_timer = self.loop.call_later(after_s, self._check_headers)

    def _check_headers(self) -> None:
        self._header_timer = None
        now = self.loop.time()
        if now - self._header_due > LATE_TIMER_S:
            # The loop itself is behind (timers run before reads): the client's bytes may be
            # waiting unread. Look again shortly instead of blaming the client for our lag.
            self._arm_header_timer(LATE_TIMER_S)
            return
        timeout_s = self.limits.header_timeout_s
        waited_s = 0.0 if self._waiting_since is None else now - self._waiting_since
        if waited_s < timeout_s:
            self._arm_header_timer(timeout_s - waited_s)
            return
        if not self._in_request:  # connected and never sent a byte: nobody to answer
            self._refused = True
            if self.limits.on_refusal is not None:
                self.limits.on_refusal("header_timeout")
            self.transport.close()
            return
        self._refuse("header_timeout", RequestTimeout(
            f"the request's headers did not arrive within {timeout_s:g} s "
            "(server.header_timeout_s)", field="headers",
        ))  # fmt: skip

    # ---- the header byte cap, counted while they arrive ----------------------------------

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count(len(name) + len(value)):
            super().on_header(name, value)

    def _count(self, n: int) -> bool:
        if self._refused:
            return False
        self._header_bytes += n
        if max(self._header_bytes, self._raw_bytes) > self.limits.max_header_bytes:
            self._refuse("headers_too_large", HeadersTooLarge(
                f"headers are over the {self.limits.max_header_bytes}-byte limit "
                "(server.max_header_bytes)", field="headers",
            ))  # fmt: skip
            return False
        return True

    def on_headers_complete(self) -> None:
        self._waiting_since = None
        self._in_request = False
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the rest of a refused request is not parsed
            return
        super().data_received(data)
        # llhttp hands a header over only once it ends, so a header that never ends is counted
        # here, in raw bytes received while the headers are incomplete.
        if self._in_request and not self._refused:
            self._raw_bytes += len(data)
            if self._raw_bytes > self.limits.max_header_bytes:
                self._count(self._raw_bytes)

    def _refuse(self, reason: str, error: FrugalError) -> None:
        """The JSON error, straight to the socket, then close: no ASGI task is started."""
        self._refused = True
        if self.limits.on_refusal is not None:
            self.limits.on_refusal(reason)
        if self.transport.is_closing():
            return
        reply = reply_for(error, new_request_id())
        head = [STATUS_LINE[reply.status], b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(reply.body), b"connection: close\r\n"]  # fmt: skip
        head += [b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("latin-1"))
                 for k, v in reply.headers.items()]  # fmt: skip
        self.transport.write(b"".join(head) + b"\r\n" + reply.body)
        self.transport.close()


__all__ = ["FrugalHttpProtocol", "Limits", "limits_of"]
