"""Opt-in payload capture: which requests are kept, and what is redacted before they are.

Nothing is captured unless an endpoint's config has a ``capture`` section. Redaction runs before
the payload leaves the request (so the ledger writer never sees the original): object keys named
in ``redact_fields`` have their values replaced at any depth, and every match of a
``redact_patterns`` regex inside a string value is replaced.
"""

from __future__ import annotations

import random
import re
from typing import Any

import orjson

from frugal.config import CaptureConfig

REDACTED = "[redacted]"


class Redactor:
    def __init__(self, fields: list[str], patterns: list[str]) -> None:
        self.fields = frozenset(fields)
        self.patterns = [re.compile(p) for p in patterns]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k in self.fields else self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, str) and self.patterns:
            for pattern in self.patterns:
                value = pattern.sub(REDACTED, value)
        return value


class Capture:
    """Decides whether a request is captured and turns it into redacted JSON text."""

    def __init__(self, config: CaptureConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.redact = Redactor(config.redact_fields, config.redact_patterns)
        self.retention_s = config.retention_days * 86400.0
        self._rng = rng or random.Random()

    def wanted(self) -> bool:
        return self.config.enabled and (
            self.config.sample >= 1.0 or self._rng.random() < self.config.sample
        )

    def encode(self, value: Any) -> str:
        return orjson.dumps(
            self.redact(value), option=orjson.OPT_SERIALIZE_NUMPY, default=str
        ).decode()


__all__ = ["REDACTED", "Capture", "Redactor"]
