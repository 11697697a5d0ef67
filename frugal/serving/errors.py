"""The one table from frugal errors to HTTP statuses and JSON bodies."""

from __future__ import annotations

import math

from frugal.errors import (
    BudgetExceeded,
    Conflict,
    DeadlineExceeded,
    Forbidden,
    FrugalError,
    HeadersTooLarge,
    InvalidInput,
    ModelFailed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamFailed,
    UpstreamTimeout,
)

# Most specific first: PayloadTooLarge is an InvalidInput.
STATUS: tuple[tuple[type[FrugalError], int], ...] = (
    (PayloadTooLarge, 413),
    (HeadersTooLarge, 431),
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (BudgetExceeded, 429),
    (NotFound, 404),
    (Conflict, 409),
    (Overloaded, 503),
    (DeadlineExceeded, 504),
    (ModelFailed, 500),
    (UpstreamTimeout, 504),
    (UpstreamFailed, 502),
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
    if isinstance(error, BudgetExceeded):
        body["budget"] = {"name": error.budget, "limit": error.limit, "spent": error.spent,
                          "resets_at": error.resets_at}  # fmt: skip
    body["request_id"] = request_id
    return body


def error_headers(error: FrugalError) -> dict[str, str]:
    if isinstance(error, Overloaded | RateLimited):
        return {"retry-after": str(max(1, math.ceil(error.retry_after_s)))}
    if isinstance(error, Unauthorized):
        return {"www-authenticate": 'Bearer realm="frugal"'}
    return {}


__all__ = ["STATUS", "error_body", "error_headers", "status_of"]
