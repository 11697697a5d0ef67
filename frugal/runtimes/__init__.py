"""Runtimes: one module per kind of model artifact, all behind the ``Model`` protocol."""

from frugal.runtimes.base import Model, SizedModel, sha256_of, top_two, verify_artifact
from frugal.runtimes.isolation import predict_isolated
from frugal.runtimes.loader import load_model
from frugal.runtimes.schema import (
    MAX_NESTING_DEPTH,
    MAX_TENSOR_ELEMENTS,
    NUMPY_DTYPES,
    InputSchema,
    check_depth,
    datatype_of,
)
from frugal.types import Item, ModelRef, Prediction

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_TENSOR_ELEMENTS",
    "NUMPY_DTYPES",
    "InputSchema",
    "Item",
    "Model",
    "ModelRef",
    "Prediction",
    "SizedModel",
    "check_depth",
    "datatype_of",
    "load_model",
    "predict_isolated",
    "sha256_of",
    "top_two",
    "verify_artifact",
]
