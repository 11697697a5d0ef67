"""Hypothesis strategies shared by tests: v2 tensors and the schemas that accept them."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from frugal.config import TensorSpec

NUMERIC = {
    "BOOL": st.booleans(),
    "UINT8": st.integers(0, 255),
    "INT32": st.integers(-(2**31), 2**31 - 1),
    "INT64": st.integers(-(2**53), 2**53),  # JSON numbers stay exact up to 2**53
    "FP32": st.floats(allow_nan=False, allow_infinity=False, width=32),
    "FP64": st.floats(allow_nan=False, allow_infinity=False),
}


@st.composite
def tensors(draw: st.DrawFn) -> tuple[TensorSpec, np.ndarray]:
    """A declared input and a batch of rows that fits it (datatype and inner shape)."""
    datatype = draw(st.sampled_from([*NUMERIC, "BYTES"]))
    inner = draw(st.lists(st.integers(1, 4), min_size=0 if datatype == "BYTES" else 1, max_size=2))
    if datatype == "BYTES":
        inner = []
    batch = draw(st.integers(1, 5))
    count = batch * int(np.prod(inner, dtype=np.int64))
    elements = st.text(max_size=8) if datatype == "BYTES" else NUMERIC[datatype]
    values = draw(st.lists(elements, min_size=count, max_size=count))
    dtype: Any = object if datatype == "BYTES" else None
    array = np.array(values, dtype=dtype).reshape([batch, *inner])
    # Validated as a frugal.yaml's inputs are: the drawn name is checked against the Literal.
    spec = TensorSpec.model_validate({"name": "x", "datatype": datatype, "shape": [-1, *inner]})
    return spec, array


# Cache keys: JSON items, the names around them, and float rows.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)  # NaN != NaN would make equal-looking values unequal
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
endpoint_names = st.text(_NAME_CHARS, min_size=1, max_size=16)
model_versions = st.builds(
    "{}:{}".format, st.text(_NAME_CHARS, min_size=1, max_size=12), st.integers(1, 20).map(str)
)
model_lists = st.lists(model_versions, min_size=1, max_size=3, unique=True)
scopes = st.just("global") | st.text(_NAME_CHARS, min_size=1, max_size=8).map("tenant-{}".format)
key_params = st.dictionaries(st.text(max_size=6), json_scalars, max_size=3)
float_rows = st.lists(
    st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=16
)

# The ledger's tier_costs: the model dollars of each version a request ran on, in tier order.
tier_cost_lists = st.lists(
    st.tuples(model_versions, st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)),
    max_size=4,
)
