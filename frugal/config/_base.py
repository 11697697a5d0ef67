"""What every section of frugal.yaml shares: strictness, and errors that carry their path."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
)

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
RuntimeName = Literal["sklearn", "onnx", "torch", "python", "openai"]
RUNTIMES_NEEDING_SHA256 = ("sklearn", "onnx", "torch")


class _Section(BaseModel):
    """Unknown keys are errors, so a typo in frugal.yaml never silently does nothing.

    Floats must be finite: YAML reads ``.inf`` and ``.nan`` as numbers, and no setting means
    anything with them. An infinity passes a lower bound (``linger_ms: .inf`` held every item
    until its deadline, so every request got 504); refusing both here names the field for every
    float of every section, present and future.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _FieldError(ValueError):
    """Raised inside validators to report a precise path that pydantic's loc cannot carry."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


__all__ = ["RUNTIMES_NEEDING_SHA256", "Datatype", "RuntimeName"]
