"""frugal.yaml's `ledger`, `auth` and `server` sections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    model_validator,
)

from frugal.config._base import _FieldError, _Section

POSTGRES_SCHEMES = ("postgresql", "postgres")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_postgres_url(location: str | Path) -> bool:
    """A ledger location that names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.partition("://")[0] in POSTGRES_SCHEMES


def postgres_url_problem(url: str) -> str | None:
    """What is wrong with a PostgreSQL ledger URL, or None: checked without connecting (the
    config loads without the ``postgres`` extra). A password is refused: frugal.yaml and command
    lines are read by many; it goes in an environment variable or libpq's ``.pgpass``."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in POSTGRES_SCHEMES:  # the URL itself is not echoed: it may hold a
        # password
        what = f"the scheme {scheme!r}" if sep else "it"
        return f"{what} is not postgresql:// (postgresql://user@host:port/database)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.password is not None:
        return (
            "the URL holds a password: take it out, and put it in an environment variable that "
            "ledger.password_env names (or PGPASSWORD, ~/.pgpass); frugal.yaml is read by many"
        )
    if parts.fragment:
        return "a postgresql:// URL takes no #fragment"
    return None


class LedgerConfig(_Section):
    enabled: bool = True
    path: Path = Path("frugal-ledger.db")
    # A PostgreSQL database every server process reaches (postgresql://user@host:port/db):
    # one ledger for several machines or Ray replicas. Absent: the SQLite file `path`.
    url: str | None = None
    # The environment variable that holds the database password (else libpq's PGPASSWORD or
    # ~/.pgpass, or none); the name is in config, the secret never is.
    password_env: str | None = None
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

    @model_validator(mode="after")
    def _check_url(self) -> LedgerConfig:
        if self.url is not None:
            problem = postgres_url_problem(self.url)
            if problem is not None:
                raise _FieldError("url", problem)
        if self.password_env is not None:
            if self.url is None:
                raise _FieldError("password_env", "`password_env` goes with `url` (PostgreSQL)")
            if not _ENV_NAME.fullmatch(self.password_env):
                raise _FieldError(
                    "password_env", f"{self.password_env!r} is not an environment variable name"
                )
        return self


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


class PriorityConfig(_Section):
    """Priority by caller tier (docs/priority.md): a model's queue serves higher tiers first and
    sheds lower tiers first under overload. Absent: one FIFO queue, as cheap as before.

    A caller's tier is its API key's ``tier`` (``x-frugal-tier`` without auth); a tier not
    listed here, or none, is served as the last (lowest) one listed."""

    tiers: list[str] = Field(min_length=1, max_length=16)  # highest first
    # A waiting item older than this is served next whatever its tier: a bound on starvation.
    starvation_ms: Annotated[float, Field(gt=0, le=600_000)] = 500.0

    @model_validator(mode="after")
    def _check_tiers(self) -> PriorityConfig:
        seen: set[str] = set()
        for i, tier in enumerate(self.tiers):
            if not tier or len(tier) > 64 or not tier.isprintable():
                raise _FieldError(f"tiers[{i}]", "a tier is a printable name of 1 to 64 characters")
            if tier in seen:
                raise _FieldError(f"tiers[{i}]", f"tier {tier!r} is listed twice")
            seen.add(tier)
        return self


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
    # The Open Inference Protocol over gRPC on its own port (the `grpc` extra); 0 picks a free one.
    grpc_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    cors: CorsConfig | None = None
    # Log lines as text for people, or one JSON object a line (`frugal serve --log-format`
    # overrides it); docs/observability.md#logs.
    log_format: Literal["text", "json"] = "text"
    # The share of requests that get a log line at info (every request does at debug).
    log_sample: Annotated[float, Field(ge=0, le=1)] = 0.01
    priority: PriorityConfig | None = None  # absent: FIFO, every caller alike


__all__ = [
    "POSTGRES_SCHEMES",
    "AuthConfig",
    "CorsConfig",
    "LedgerConfig",
    "PriorityConfig",
    "ServerConfig",
    "is_postgres_url",
    "postgres_url_problem",
]
