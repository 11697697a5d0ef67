"""frugal.yaml's `ledger`, `auth` and `server` sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    Field,
)

from frugal.config._base import _Section


class LedgerConfig(_Section):
    enabled: bool = True
    path: Path = Path("frugal-ledger.db")
    flush_interval_ms: Annotated[float, Field(gt=0)] = 200.0
    # How often an idle run stamps "still alive" (a killed run is billed to its last one);
    # the writer wakes every flush interval, so beats come at least that far apart.
    heartbeat_s: Annotated[float, Field(gt=0, le=300)] = 2.0
    # How often the server's measured CPU is priced and shared by the requests that finished:
    # also how late a row's overhead_usd is filled in after the row itself.
    cost_interval_ms: Annotated[float, Field(ge=10, le=60_000)] = 1000.0
    retention_days: Annotated[float, Field(gt=0)] | None = None  # absent: rows are kept
    # The audit chain's anchors outside the ledger file (docs/security.md, "Audit log"): a key
    # file (mode 600, `frugal audit new-key` writes one) makes each row's hash an HMAC-SHA256
    # nobody without it can recompute; the head file is rewritten with `SEQ:HASH` on every append.
    audit_key_file: Path | None = None
    audit_head_file: Path | None = None


class AuthConfig(_Section):
    """API keys (docs/security.md). Absent: the server binds to loopback only."""

    keys: Path = Path("frugal-keys.db")  # SQLite; secrets are stored only as hashes
    reload_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0  # keys changed by the CLI


class CorsConfig(_Section):
    """Cross-origin browser access; absent (the default), browsers get no CORS headers."""

    allow_origins: list[str] = Field(min_length=1)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST"])
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-request-id"]
    )
    max_age_s: Annotated[int, Field(ge=0)] = 600


class ServerConfig(_Section):
    """What one server process accepts; docs/serving.md#under-hostile-load says why each
    bound exists and what a client sees past it."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_body_bytes: Annotated[int, Field(ge=1)] = 1_048_576
    max_header_bytes: Annotated[int, Field(ge=256)] = 16_384  # all header names and values
    max_concurrency: Annotated[int, Field(ge=1)] | None = None  # open requests, then 503
    # A request's headers must arrive within header_timeout_s of its first byte (or of the
    # connection opening), its body within body_timeout_s of its headers: then 408.
    header_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # Bodies still arriving from one client address; another request from it is a 429.
    max_slow_bodies_per_client: Annotated[int, Field(ge=1)] | None = 8
    # Open connections; past it, inference requests get 503 + Retry-After and the connection closes.
    max_connections: Annotated[int, Field(ge=1)] | None = 1024
    backlog: Annotated[int, Field(ge=1, le=65535)] = 1024  # the kernel's accept queue
    # The event loop's lag past which inference requests are refused (503) before their body is
    # read: the server's own CPU, not the model's, is then the bottleneck.
    max_loop_lag_ms: Annotated[float, Field(gt=0)] | None = 100.0
    # On SIGTERM, how long open requests may take; past it they are answered 503 and recorded.
    drain_timeout_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    # Health probes on their own port and thread, answered however busy the event loop is.
    health_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    cors: CorsConfig | None = None


__all__ = ["AuthConfig", "CorsConfig", "LedgerConfig", "ServerConfig"]
