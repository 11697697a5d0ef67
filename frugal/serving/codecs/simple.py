"""Simple JSON: ``{"instances": [...]}`` -> ``{"predictions": [...]}``.

In a request of several instances, an item the model failed on is ``null`` in ``predictions``
and listed in ``errors``; the others are still answered.
"""

from __future__ import annotations

from typing import Any

from frugal.errors import InvalidInput
from frugal.types import ItemOutcome


def decode_predict_request(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with `instances`", field="body")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("must be a non-empty list", field="instances")
    return instances


def encode_predict_response(outcomes: list[ItemOutcome]) -> dict[str, Any]:
    predictions = [o.prediction.value if o.prediction is not None else None for o in outcomes]
    body: dict[str, Any] = {"predictions": predictions}
    confidences = [o.prediction.confidence if o.prediction else None for o in outcomes]
    if any(c is not None for c in confidences):
        body["confidences"] = confidences
    errors = [{"instance": i, "error": o.error.message} for i, o in enumerate(outcomes) if o.error]
    if errors:
        body["errors"] = errors
    return body


__all__ = ["decode_predict_request", "encode_predict_response"]
