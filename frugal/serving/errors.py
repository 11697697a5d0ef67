"""The one table from frugal errors to HTTP statuses and JSON bodies, and the one way to answer.

Every error reply of the server (inference, LLM, admin, metadata) is ``reply_for(error, ...)``:
the status from ``STATUS``, the body from ``error_body``, and the headers every response carries.
No other module writes an error status.
"""

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
    MethodNotAllowed,
    ModelFailed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamFailed,
    UpstreamTimeout,
)
from frugal.serving.exchange import Reply, json_reply

# Most specific first: PayloadTooLarge is an InvalidInput.
STATUS: tuple[tuple[type[FrugalError], int], ...] = (
    (PayloadTooLarge, 413),
    (HeadersTooLarge, 431),
    (RequestTimeout, 408),
    (UnsupportedMediaType, 415),
    (MethodNotAllowed, 405),
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


# Not errors of a request: the two other statuses the server answers with on its own.
NOT_READY_STATUS = 503  # readiness probes while loading or draining: take me out of rotation
CRASH_STATUS = 500  # an exception frugal did not raise on purpose (a bug): the log has it
CLIENT_GONE_STATUS = 499  # nginx's convention, logged only: the client left before its body
MAX_RETRY_AFTER_S = 86_400  # as access/ratelimit.py's MAX_WAIT_S: a day


def status_of(error: FrugalError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def is_server_fault(error: FrugalError) -> bool:
    """A 5xx: the server or its upstream failed, not the caller (worth a log line)."""
    return status_of(error) >= CRASH_STATUS


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


def retry_after(seconds: float) -> str:
    """Retry-After's whole seconds: at least 1, at most a day, whatever the estimate was (an
    estimate of 1e300 s, infinity or NaN must not become a 300-digit header or a 500)."""
    if not seconds > 1:  # NaN and -inf too
        return "1"
    return str(math.ceil(min(seconds, MAX_RETRY_AFTER_S)))


def error_headers(error: FrugalError) -> dict[str, str]:
    if isinstance(error, Overloaded | RateLimited):
        return {"retry-after": retry_after(error.retry_after_s)}
    if isinstance(error, Unauthorized):
        return {"www-authenticate": 'Bearer realm="frugal"'}
    return {}


def cost_headers(request_id: str, model: str, cost_usd: float) -> dict[str, str]:
    """What every answer past admission says: its id, who answered, what it cost."""
    return {"x-request-id": request_id, "x-frugal-model": model,
            "x-frugal-cost-usd": f"{cost_usd:.6e}"}  # fmt: skip


def reply_for(
    error: FrugalError, request_id: str, *, model: str | None = None, cost_usd: float = 0.0
) -> Reply:
    """The answer to ``error``. With ``model`` (the request got past admission and was priced),
    the cost headers too; without, only the request id."""
    headers = (
        cost_headers(request_id, model, cost_usd)
        if model is not None
        else {"x-request-id": request_id}
    )
    return json_reply(
        error_body(error, request_id), status_of(error), headers | error_headers(error)
    )


def crash_reply(request_id: str) -> Reply:
    """An unexpected exception: never a traceback to the client (the log has it)."""
    body = {"error": "internal error; the server log has the details", "request_id": request_id}
    return json_reply(body, CRASH_STATUS, {"x-request-id": request_id})


__all__ = [
    "CLIENT_GONE_STATUS",
    "CRASH_STATUS",
    "MAX_RETRY_AFTER_S",
    "NOT_READY_STATUS",
    "STATUS",
    "cost_headers",
    "crash_reply",
    "error_body",
    "error_headers",
    "is_server_fault",
    "reply_for",
    "retry_after",
    "status_of",
]
