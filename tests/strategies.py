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
    spec = TensorSpec(name="x", datatype=datatype, shape=[-1, *inner])
    return spec, array
