"""Open Inference Protocol v2 codec: a tensor survives encode -> JSON -> decode unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings

from frugal.config import TensorSpec
from frugal.runtimes import NUMPY_DTYPES, InputSchema
from frugal.serving.codecs import decode_infer_request, encode_tensor
from tests.strategies import tensors


@settings(max_examples=300, deadline=None)
@given(tensors())
def test_v2_tensor_round_trip(case: tuple[TensorSpec, np.ndarray]) -> None:
    """Rows encoded as a v2 tensor, sent as JSON and decoded are the rows that went in."""
    spec, array = case
    tensor = encode_tensor("x", list(array))
    tensor["datatype"] = spec.datatype  # the client states the declared type
    wire = orjson.dumps({"inputs": [tensor]})
    _, decoded = decode_infer_request(orjson.loads(wire))
    items = InputSchema([spec]).items_from_tensors(decoded)
    assert len(items) == len(array)
    for item, row in zip(items, array, strict=True):
        if spec.datatype == "BYTES":
            assert item == row
        else:
            got = np.asarray(item)
            assert got.dtype == NUMPY_DTYPES[spec.datatype]
            assert got.shape == row.shape
            np.testing.assert_array_equal(got, row.astype(NUMPY_DTYPES[spec.datatype]))


@settings(max_examples=200, deadline=None)
@given(tensors())
def test_flat_and_nested_data_decode_alike(case: tuple[TensorSpec, np.ndarray]) -> None:
    """Row-major flat data and nested data of the same tensor decode to the same items."""
    spec, array = case
    nested = encode_tensor("x", list(array))
    nested["datatype"] = spec.datatype
    flat: dict[str, Any] = dict(nested)
    nested["data"] = array.tolist()
    schema = InputSchema([spec])
    a = schema.items_from_tensors(decode_infer_request({"inputs": [nested]})[1])
    b = schema.items_from_tensors(decode_infer_request({"inputs": [flat]})[1])
    assert [np.asarray(x).tolist() for x in a] == [np.asarray(x).tolist() for x in b]


def test_strings_keep_trailing_nul_characters() -> None:
    """A string output ending in NUL goes out whole (numpy's fixed-width strings would drop it)."""
    assert encode_tensor("x", ["a\x00", "\x00"])["data"] == ["a\x00", "\x00"]
