"""Every error frugal raises on purpose, in one tree.

Errors carry no HTTP codes: ``serving/`` maps them to statuses in one table and the CLI maps
them to exit codes in one place.

    FrugalError
      ├─ ConfigError         (names the file and the field path)
      ├─ ArtifactError       (a model file missing, unreadable or not matching its sha256)
      ├─ InvalidInput        (names the field)
      │    ├─ PayloadTooLarge
      │    ├─ HeadersTooLarge
      │    ├─ RequestTimeout  (headers or body slower than the server's read deadlines)
      │    ├─ MethodNotAllowed (a route that exists, called with another method)
      │    └─ UnsupportedMediaType (a body that is not declared as JSON)
      ├─ Unauthorized        (no key, or an unknown or revoked one)
      ├─ Forbidden           (a valid key whose role or endpoint list does not allow this)
      ├─ RateLimited         (the key's request rate is over its limit; says when to retry)
      ├─ BudgetExceeded      (the key's dollars or tokens for the day are spent; names which)
      ├─ NotFound            (unknown model, version or endpoint)
      ├─ Conflict            (the name is taken, e.g. by another API key)
      ├─ Overloaded          (queue, server or shutdown cannot take it now; says when to retry)
      ├─ DeadlineExceeded    (the request's deadline passed before it was answered)
      ├─ ModelFailed         (the model itself raised on this item)
      └─ UpstreamFailed      (an upstream LLM API failed after its retries)
           └─ UpstreamTimeout (... by not answering within upstream.timeout_s)
"""

from __future__ import annotations


class FrugalError(Exception):
    """Base of every error frugal raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nHint: {self.hint}"
        return self.message


class ConfigError(FrugalError):
    """frugal.yaml (or a file it names) is invalid; ``field`` is a path like ``models[1].path``."""

    def __init__(
        self, message: str, *, field: str = "", file: str = "", hint: str | None = None
    ) -> None:
        where = f"{file}: " if file else ""
        at = f"{field}: " if field else ""
        super().__init__(f"{where}{at}{message}", hint=hint)
        self.field = field
        self.file = file


class ArtifactError(FrugalError):
    """A model artifact cannot be trusted or loaded; the server refuses to start."""


class InvalidInput(FrugalError):
    """The request is malformed; ``field`` names the part of it that is wrong."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class PayloadTooLarge(InvalidInput):
    """The request body is over ``server.max_body_bytes``."""


class HeadersTooLarge(InvalidInput):
    """The request's headers are over ``server.max_header_bytes``."""


class RequestTimeout(InvalidInput):
    """The client sent its headers or body slower than ``server.header_timeout_s`` /
    ``body_timeout_s`` allow: a slow client must not hold a connection, a slot or shutdown."""


class MethodNotAllowed(InvalidInput):
    """The path exists, but not for this HTTP method (the reply's Allow lists those it takes)."""


class UnsupportedMediaType(InvalidInput):
    """The body's Content-Type is not JSON."""


class Conflict(FrugalError):
    """What the request would create exists already (an API key's name)."""


class Unauthorized(FrugalError):
    """No API key, or one that is unknown or revoked. The message never contains the key."""


class Forbidden(FrugalError):
    """A valid key that may not do this: its role, or the endpoints it is limited to;
    ``field`` names the part of the request refused, where one is (e.g. ``version``)."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class RateLimited(FrugalError):
    """The key sent more requests than its rate allows; ``retry_after_s`` is when a token frees."""

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class BudgetExceeded(FrugalError):
    """The key's daily budget is spent; ``budget`` names it (``usd_day`` or ``tokens_day``)."""

    def __init__(
        self, message: str, *, budget: str, limit: float, spent: float, resets_at: float,
        hint: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message, hint=hint)
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.resets_at = resets_at  # unix seconds: the next UTC midnight


class NotFound(FrugalError):
    """The request names a model, version, endpoint or path that is not served."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class Overloaded(FrugalError):
    """The model's queue is full; ``retry_after_s`` estimates when it will have room."""

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(FrugalError):
    """The request's deadline passed; an item that expires in the queue never reaches the model."""


class ModelFailed(FrugalError):
    """The model raised on this item (after bisection isolated it from the rest of its batch)."""


class UpstreamFailed(FrugalError):
    """An upstream LLM API answered with an error, or not at all, on every attempt, or with an
    answer that cannot be used; ``field`` names the part of its answer that is wrong, if one is."""

    def __init__(self, message: str, *, field: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class UpstreamTimeout(UpstreamFailed):
    """The upstream did not answer within its ``timeout_s``, on every attempt."""


__all__ = [
    "ArtifactError",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "DeadlineExceeded",
    "Forbidden",
    "FrugalError",
    "HeadersTooLarge",
    "InvalidInput",
    "MethodNotAllowed",
    "ModelFailed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "RequestTimeout",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamFailed",
    "UpstreamTimeout",
]
