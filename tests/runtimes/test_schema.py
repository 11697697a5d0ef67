"""The fast path for flat float rows gives what the general path gives, and refuses the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.runtimes import NUMPY_DTYPES, InputSchema

FLOATS = ("FP16", "FP32", "FP64")
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70))


def general(row: list[object], datatype: str) -> np.ndarray:
    """What the general path made of a flat numeric row before the fast path existed."""
    with np.errstate(over="ignore"):  # past the dtype's range: inf, refused below
        return np.asarray(row).astype(NUMPY_DTYPES[datatype])


@settings(max_examples=200, deadline=None)
@given(
    datatype=st.sampled_from(FLOATS),
    row=st.lists(numbers, min_size=1, max_size=16).filter(
        lambda r: any(isinstance(v, float) for v in r)
    ),
)
def test_flat_rows_match_the_general_path(datatype: str, row: list[object]) -> None:
    """A flat row of numbers becomes the same array, or the same refusal, either way."""
    spec = TensorSpec.model_validate({"name": "x", "datatype": datatype, "shape": [-1, len(row)]})
    schema = InputSchema([spec])
    try:
        expected = general(row, datatype)
        assert expected.dtype.kind == "f" and np.isfinite(expected).all()
    except (AssertionError, OverflowError, TypeError, ValueError):
        with pytest.raises(InvalidInput):
            schema.item_from_instance(row, "instances[0]")
        return
    got = schema.item_from_instance(row, "instances[0]")
    assert got.dtype == expected.dtype and got.shape == (len(row),)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([True, 0.5], "got true/false"),
        ([1e300, 0.5], "finite FP32"),
        ([math.nan, 0.5], "finite FP32"),
        ([math.inf, 0.5], "finite FP32"),
        ([10**400, 0.5], "got numbers"),
        (["1.5", 0.5], "got numbers"),
        ([0.5, 0.5, 0.5], "does not match [2]"),
    ],
)
def test_flat_rows_refused_as_before(row: list[object], message: str) -> None:
    """Rows the fast path leaves to the general path get its messages, naming the field."""
    schema = InputSchema([TensorSpec(name="x", datatype="FP32", shape=[-1, 2])])
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[")) as caught:
        schema.item_from_instance(row, "instances[3]")
    assert caught.value.field == "instances[3]"
