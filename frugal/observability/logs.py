"""The server's log lines: text for people, or one JSON object a line for log pipelines.

``configure_logging`` sets up the root logger once per process (``frugal serve``); in JSON mode
every line (frugal's, uvicorn's, a library's) is an object with ``ts``, ``level``, ``logger``
and ``message``, plus the fields a line carries.

``RequestLog`` writes one line per answered request: every request at debug, a random
``sample`` of them at info (a busy server at info would otherwise log more bytes than it
answers). The line names the request (id, endpoint, model version, cache result, batch ids,
cost, status, latency) and nothing it carried: never a payload, a prompt or a key's secret.
``wanted()`` is the only work done for a request whose line is not written: a level check the
logging module caches, and a random draw when sampling.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(levelname)s: %(name)s: %(message)s"
REQUEST_LOGGER = "frugal.requests"
# The attribute of a LogRecord that holds a line's structured fields (``extra={FIELDS: {...}}``).
FIELDS = "frugal_fields"


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a record's ``frugal_fields`` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The root logger at ``level``, writing to stderr in ``log_format``.

    Like ``logging.basicConfig``, it leaves a root logger that someone else already set up (an
    application embedding frugal, a test runner) alone; a second call replaces only the handler
    the first one installed, so it changes the format instead of doubling every line."""
    root = logging.getLogger()
    if any(not getattr(h, _OURS, False) for h in root.handlers):
        return
    for old in root.handlers[:]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    setattr(handler, _OURS, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if json_lines:  # uvicorn's loggers keep their own text handlers otherwise
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            named = logging.getLogger(name)
            for old in named.handlers[:]:
                named.removeHandler(old)
            named.propagate = True


_OURS = "_frugal_handler"


class RequestLog:
    """The per-request line: at debug every request, at info ``sample`` of them (0 to 1)."""

    def __init__(self, sample: float, logger: logging.Logger | None = None) -> None:
        self.sample = sample
        self.log = logger if logger is not None else logging.getLogger(REQUEST_LOGGER)

    def wanted(self) -> int:
        """The level to write this request's line at, or 0 for no line (checked first, so a
        request that is not logged builds nothing)."""
        if self.log.isEnabledFor(logging.DEBUG):
            return logging.DEBUG
        sample = self.sample
        if sample > 0 and self.log.isEnabledFor(logging.INFO) and random.random() < sample:
            return logging.INFO
        return 0

    def write(
        self,
        level: int,
        *,
        request_id: str,
        endpoint: str,
        model: str,
        cache: str,
        batch_ids: Iterable[str],
        cost_usd: float,
        status: int,
        latency_s: float,
        key: str,
    ) -> None:
        """``key`` is the API key's name (never its secret); ``batch_ids`` as batch_id() makes."""
        fields = {
            "request_id": request_id,
            "endpoint": endpoint,
            "model": model,
            "cache": cache,
            "batch_ids": sorted(set(batch_ids)),
            "cost_usd": cost_usd,
            "status": status,
            "latency_ms": round(1000 * latency_s, 3),
            "key": key,
        }
        self.log.log(
            level,
            "request %s %s %s %d %.3f ms $%.3g cache=%s",
            request_id, endpoint, model, status, fields["latency_ms"], cost_usd, cache,
            extra={FIELDS: fields},
        )  # fmt: skip


def batch_id(model: str, started_at: float) -> str:
    """A batch's id: its model version and start time, as the ledger's ``batches`` row holds
    them (``model:version@ts``), so a log line joins to its batch row."""
    return f"{model}@{started_at!r}"


__all__ = [
    "FIELDS",
    "REQUEST_LOGGER",
    "JsonFormatter",
    "LogFormat",
    "RequestLog",
    "batch_id",
    "configure_logging",
]
