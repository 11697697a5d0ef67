"""frugal.yaml's per-endpoint `cache` and `capture` sections."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from frugal.config._base import _Section


class EarlyExpiryConfig(_Section):
    """XFetch: recompute a hot entry shortly before it expires, with probability rising as
    expiry nears (beta > 1 refreshes earlier), instead of letting every request miss at once."""

    enabled: bool = True
    beta: Annotated[float, Field(gt=0)] = 1.0


class SemanticConfig(_Section):
    """Serve the answer of the nearest stored text when cosine similarity >= threshold."""

    enabled: bool = True
    # Measured (bench/semantic_threshold.py, docs/caching.md): MiniLM scores word-order swaps
    # ("Paris to London" / "London to Paris") >= 0.99, so only 0.998 had no false hit.
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.998
    max_entries: Annotated[int, Field(ge=1)] = 10_000
    backend: Literal["onnx", "torch"] = "onnx"


class CacheConfig(_Section):
    """Response caching of one endpoint, item by item; see docs/caching.md."""

    enabled: bool = True
    store: Literal["memory", "redis", "disk"] = "memory"
    ttl_s: Annotated[float, Field(gt=0)] = 600.0
    max_entries: Annotated[int, Field(ge=1)] = 100_000
    max_bytes: Annotated[int, Field(ge=1)] | None = None
    scope: Literal["global", "user", "session"] = "global"
    redis_url: str = "redis://127.0.0.1:6379/0"  # store: redis
    timeout_ms: Annotated[float, Field(gt=0)] = 50.0  # store: redis, per operation
    path: Path | None = None  # store: disk; default: frugal-cache-<endpoint>.db beside the ledger
    early_expiry: EarlyExpiryConfig | None = None
    warmup: Path | None = None  # a JSONL of instances computed at start-up, before readiness
    semantic: SemanticConfig | None = None  # text items only
    log_sample: Annotated[float, Field(ge=0, le=1)] = 0.0  # share of lookups logged

    @model_validator(mode="after")
    def _semantic_is_global(self) -> CacheConfig:
        if self.semantic is not None and self.semantic.enabled and self.scope != "global":
            # The nearest text may belong to another user's or session's entry.
            raise ValueError("semantic caching needs scope: global")
        return self


class CaptureConfig(_Section):
    """Opt-in storage of request and response payloads (debugging, shadow comparison).

    Payloads are never stored unless an endpoint has this section; what is stored is redacted
    first and deleted after ``retention_days``. See docs/security.md.
    """

    enabled: bool = True
    sample: Annotated[float, Field(gt=0, le=1)] = 1.0  # share of requests captured
    redact_fields: list[str] = Field(default_factory=list)  # object keys, at any depth
    redact_patterns: list[str] = Field(default_factory=list)  # regexes, in string values
    retention_days: Annotated[float, Field(gt=0)] = 7.0

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact_patterns[{i}] is not a regex: {exc}") from None
        return patterns


__all__ = ["CacheConfig", "CaptureConfig", "EarlyExpiryConfig", "SemanticConfig"]
