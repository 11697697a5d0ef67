"""Health probes on their own port and thread (``server.health_port``).

Under enough load any single event loop falls behind, and a probe queued behind thousands of
requests answers late: a Kubernetes liveness probe would then restart the pod exactly when it is
busiest. Here the probes are answered by the standard library's threading HTTP server, which
needs the GIL for microseconds and never the event loop. Liveness still checks the loop: a loop
stuck for ``STUCK_S`` (a deadlock, a blocking call) is not alive, however well this thread runs.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from frugal.errors import ConfigError
from frugal.serving.shedding import LoopLag

log = logging.getLogger("frugal.serving")
STUCK_S = 30.0


class Probed(Protocol):
    @property
    def is_ready(self) -> bool: ...

    @property
    def shedder(self) -> Any: ...  # its ``lag`` (a LoopLag) says whether the loop runs


class HealthPort:
    def __init__(self, host: str, port: int, app: Probed) -> None:
        self.host, self.port, self.app = host, port, app
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        handler = _handler(self.app)
        try:
            self._server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.host}:{self.port} for health probes: {exc.strerror}",
                field="server.health_port",
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name="frugal-health", daemon=True,
        )  # fmt: skip
        self._thread.start()
        log.info("health probes on http://%s:%d/v2/health/{live,ready}", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _handler(app: Probed) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            lag: LoopLag = app.shedder.lag
            if self.path == "/v2/health/live":
                live = lag.now_s() < STUCK_S
                self._reply(200 if live else 503, b'{"live":true}' if live else b'{"live":false}')
            elif self.path == "/v2/health/ready":
                ready = app.is_ready and lag.now_s() < STUCK_S
                self._reply(200 if ready else 503,
                            b'{"ready":true}' if ready else b'{"ready":false}')  # fmt: skip
            else:
                self._reply(404, b'{"error":"only /v2/health/live and /v2/health/ready here"}')

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the log

    return Handler


__all__ = ["HealthPort"]
