"""The one table from frugal errors to HTTP statuses and JSON bodies."""

from __future__ import annotations

import math

from frugal.errors import (
    DeadlineExceeded,
    FrugalError,
    InvalidInput,
    ModelFailed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
)

# Most specific first: PayloadTooLarge is an InvalidInput.
STATUS: tuple[tuple[type[FrugalError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidInput, 400),
    (NotFound, 404),
    (Overloaded, 503),
    (DeadlineExceeded, 504),
    (ModelFailed, 500),
)


def status_of(error: FrugalError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_body(error: FrugalError, request_id: str) -> dict[str, object]:
    """``{"error", "field"?, "hint"?, "request_id"}``: never a traceback."""
    body: dict[str, object] = {"error": error.message}
    field = getattr(error, "field", "")
    if field:
        body["field"] = field
    if error.hint:
        body["hint"] = error.hint
    body["request_id"] = request_id
    return body


def error_headers(error: FrugalError) -> dict[str, str]:
    if isinstance(error, Overloaded):
        return {"retry-after": str(max(1, math.ceil(error.retry_after_s)))}
    return {}


__all__ = ["STATUS", "error_body", "error_headers", "status_of"]
