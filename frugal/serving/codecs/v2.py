"""Open Inference Protocol (KServe v2) JSON tensors: request decoding, response encoding.

``data`` may be nested (as many clients send it) or flat row-major; both are reshaped by
``shape``. Outputs are flat row-major, as the protocol's examples and tritonclient expect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.runtimes import NUMPY_DTYPES, datatype_of
from frugal.types import ItemOutcome

DATATYPES = frozenset(NUMPY_DTYPES) | {"BYTES"}


def decode_infer_request(body: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """A parsed infer request -> (its id, checked input tensors)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with `inputs`", field="body")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("must be a string", field="id")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("must be a non-empty list of tensors", field="inputs")
    tensors = []
    for i, tensor in enumerate(inputs):
        field = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise InvalidInput("must be an object with name, shape, datatype, data", field=field)
        for key in ("name", "shape", "datatype", "data"):
            if key not in tensor:
                raise InvalidInput(f"missing `{key}`", field=f"{field}.{key}")
        if not isinstance(tensor["name"], str):
            raise InvalidInput("must be a string", field=f"{field}.name")
        shape = tensor["shape"]
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise InvalidInput("must be a list of non-negative integers", field=f"{field}.shape")
        datatype = tensor["datatype"]
        if not isinstance(datatype, str) or datatype not in DATATYPES:  # {} is unhashable
            known = ", ".join(sorted(DATATYPES))
            raise InvalidInput(f"unknown datatype; one of {known}", field=f"{field}.datatype")
        if not isinstance(tensor["data"], list | np.ndarray):  # an array: binary (v2_binary.py)
            raise InvalidInput("must be a list", field=f"{field}.data")
        tensors.append(tensor)
    return request_id, tensors


def encode_infer_response(
    model_name: str, model_version: str, request_id: str | None, outcomes: Sequence[ItemOutcome]
) -> dict[str, Any]:
    """Predictions -> a ``predict`` tensor, and a ``confidence`` tensor where every item has one."""
    values = [o.prediction.value for o in outcomes if o.prediction is not None]
    outputs = [encode_tensor("predict", values)]
    confidences = [o.prediction.confidence for o in outcomes if o.prediction is not None]
    if confidences and all(c is not None for c in confidences):
        outputs.append(encode_tensor("confidence", confidences))
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def encode_tensor(name: str, values: Sequence[Any]) -> dict[str, Any]:
    if values and all(isinstance(v, str) for v in values):
        # Not through numpy: its fixed-width strings drop trailing NUL characters.
        return {"name": name, "datatype": "BYTES", "shape": [len(values)], "data": list(values)}
    array = np.asarray(values)
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data = [str(v) for v in array.reshape(-1)]
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": spec.shape}


__all__ = ["decode_infer_request", "encode_infer_response", "encode_tensor", "tensor_metadata"]
