"""The binary tensor data extension of the Open Inference Protocol over HTTP (Triton's).

Why: ``tritonclient.http`` sends and asks for binary tensors by default. A request carries an
``Inference-Header-Content-Length`` header: that many bytes of JSON come first, then the raw
tensor bytes of every input whose ``parameters.binary_data_size`` is set, in input order
(fixed-size types little-endian row-major; ``BYTES`` as elements each prefixed by a 4-byte
little-endian length). Those inputs are given ``data`` here (a numpy array, or a list of strings)
and then go through the very same checks, cache, routing, batcher and ledger as a JSON body.

An answer is binary where the request asked (``parameters.binary_data_output`` for every output,
``outputs[i].parameters.binary_data`` for one): the JSON header, then the outputs' bytes, with
the header's length in ``Inference-Header-Content-Length`` and each binary output's length in its
``parameters.binary_data_size``. Every length is checked with exact integers against the body and
the shape before a byte is read: a length that lies is a 400 naming the input, never a slice past
the end or a short tensor.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from frugal.errors import InvalidInput, UnsupportedMediaType
from frugal.runtimes import NUMPY_DTYPES
from frugal.serving.exchange import Exchange, Reply, check_json_content_type, json_reply

HEADER = "inference-header-content-length"
HEADER_FIELD = "Inference-Header-Content-Length"
BINARY_MEDIA = "application/octet-stream"
_LENGTH = struct.Struct("<I")
_LITTLE = {name: np.dtype(t).newbyteorder("<") for name, t in NUMPY_DTYPES.items()}


@dataclass(slots=True)
class InferBody:
    """A parsed v2 infer request (``body``, with binary inputs given ``data``), and which
    outputs its answer sends as binary (``all_binary``, or by name in ``binary``)."""

    body: Any
    all_binary: bool = False
    binary: dict[str, bool] = field(default_factory=dict)

    @property
    def wants_binary(self) -> bool:
        return self.all_binary or any(self.binary.values())

    def encode(self, out: dict[str, Any], status: int, headers: dict[str, str]) -> Reply:
        """The answer: plain JSON, or the JSON header then the binary outputs' bytes."""
        if not self.wants_binary:
            return json_reply(out, status, headers)
        chunks: list[bytes] = []
        outputs = []
        for tensor in out["outputs"]:
            if not self.binary.get(tensor["name"], self.all_binary):
                outputs.append(tensor)
                continue
            raw = tensor_bytes(tensor["datatype"], tensor["data"])
            chunks.append(raw)
            meta = {k: v for k, v in tensor.items() if k != "data"}
            meta["parameters"] = {**tensor.get("parameters", {}), "binary_data_size": len(raw)}
            outputs.append(meta)
        header = orjson.dumps({**out, "outputs": outputs}, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {**headers, "content-type": BINARY_MEDIA, HEADER: str(len(header))}
        return Reply(status, b"".join([header, *chunks]), headers)


async def read_infer_body(exchange: Exchange, limit: int) -> InferBody:
    """The request body, JSON or binary (by its ``Inference-Header-Content-Length``)."""
    declared = exchange.headers.get(HEADER)
    if declared is None:
        return _with_outputs(await exchange.read_json(limit))
    _check_content_type(exchange.headers.get("content-type"))
    header_length = _header_length(declared)
    raw = await exchange.read_bytes(limit)
    if header_length > len(raw):
        raise InvalidInput(
            f"says the JSON header is {header_length} bytes, but the body has {len(raw)}",
            field=HEADER_FIELD,
        )
    try:
        body = orjson.loads(memoryview(raw)[:header_length])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the JSON header is not valid JSON: {exc}", field="body") from None
    attach_binary(body, memoryview(raw)[header_length:])
    return _with_outputs(body)


def _header_length(declared: str) -> int:
    # Digits only (no sign, no spaces, no "1e3"), and few enough that int() stays cheap.
    if not declared.isascii() or not declared.isdigit() or len(declared) > 19:
        raise InvalidInput(
            f"must be a non-negative whole number of bytes, not {declared[:40]!r}",
            field=HEADER_FIELD,
        )
    return int(declared)


def _check_content_type(value: str | None) -> None:
    if value is not None and value.partition(";")[0].strip().lower() == BINARY_MEDIA:
        return
    try:
        check_json_content_type(value)
    except UnsupportedMediaType as error:
        raise UnsupportedMediaType(
            error.message.replace("must be JSON", f"must be JSON or {BINARY_MEDIA}"),
            field="content-type",
        ) from None


def attach_binary(body: Any, binary: memoryview) -> None:
    """Gives each input with ``parameters.binary_data_size`` its ``data`` from ``binary``, in
    input order; every byte of ``binary`` must belong to one input."""
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list):
        if binary:
            raise InvalidInput("binary data follows a header without `inputs`", field="inputs")
        return  # decode_infer_request names what is missing
    offset = 0
    for i, tensor in enumerate(inputs):
        size = _binary_size(tensor, f"inputs[{i}]")
        if size is None:
            continue
        where = f"inputs[{i}]"
        if "data" in tensor:
            raise InvalidInput("has both `data` and `parameters.binary_data_size`",
                               field=f"{where}.data")  # fmt: skip
        if size > len(binary) - offset:
            raise InvalidInput(
                f"binary_data_size {size} is past the end of the body: {len(binary) - offset} "
                "bytes are left after the inputs before it",
                field=f"{where}.parameters.binary_data_size",
            )
        tensor["data"] = tensor_from_bytes(tensor, binary[offset : offset + size], where)
        offset += size
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes after the JSON header belong to no input (the inputs' "
            f"binary_data_size add up to {offset})",
            field="body",
        )


def _binary_size(tensor: Any, where: str) -> int | None:
    if not isinstance(tensor, dict):
        return None  # decode_infer_request refuses it
    params = tensor.get("parameters")
    if params is None:
        return None
    if not isinstance(params, dict):
        raise InvalidInput("must be an object", field=f"{where}.parameters")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput("must be a non-negative integer",
                           field=f"{where}.parameters.binary_data_size")  # fmt: skip
    return size


def tensor_from_bytes(tensor: dict[str, Any], raw: memoryview, where: str) -> Any:
    """One input's bytes -> a flat array (fixed-size types) or a list of strings (BYTES); the
    byte count must be exactly the shape's element count times the type's size."""
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput("must be a list of non-negative integers", field=f"{where}.shape")
    if datatype == "BYTES":
        return _strings(raw, where)
    if not isinstance(datatype, str) or datatype not in _LITTLE:
        known = ", ".join(sorted([*_LITTLE, "BYTES"]))
        raise InvalidInput(f"unknown datatype; one of {known}", field=f"{where}.datatype")
    dtype = _LITTLE[datatype]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: exact, never wraps
    if len(raw) != expected:
        raise InvalidInput(
            f"binary_data_size is {len(raw)} bytes, but shape {shape} of {datatype} needs "
            f"{expected}",
            field=f"{where}.parameters.binary_data_size",
        )
    if datatype == "BOOL":
        return np.frombuffer(raw, dtype=np.uint8) != 0
    return np.frombuffer(raw, dtype=dtype)


def _strings(raw: memoryview, where: str) -> list[str]:
    """BYTES elements: each a 4-byte little-endian length, then that many UTF-8 bytes."""
    out: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if end - offset < 4:
            raise InvalidInput(
                f"BYTES element {len(out)} is cut off in its 4-byte length",
                field=f"{where}.parameters.binary_data_size",
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if length > end - offset:
            raise InvalidInput(
                f"BYTES element {len(out)} says {length} bytes, but {end - offset} are left",
                field=f"{where}.parameters.binary_data_size",
            )
        try:
            out.append(str(raw[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"BYTES element {len(out)} is not UTF-8 text",
                               field=f"{where}.data") from None  # fmt: skip
        offset += length
    return out


def tensor_bytes(datatype: str, data: Sequence[Any]) -> bytes:
    """One output's values as the extension's bytes (little-endian, or length-prefixed)."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            encoded = value.encode() if isinstance(value, str) else bytes(value)
            parts += [_LENGTH.pack(len(encoded)), encoded]
        return b"".join(parts)
    return np.asarray(data, dtype=_LITTLE[datatype]).tobytes()


def _with_outputs(body: Any) -> InferBody:
    """Which outputs the answer sends as binary; a bad ``outputs`` is a 400 naming it."""
    parsed = InferBody(body)
    if not isinstance(body, dict):
        return parsed  # decode_infer_request names the problem
    params = body.get("parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise InvalidInput("must be an object", field="parameters")
        parsed.all_binary = _flag(params.get("binary_data_output"), "parameters.binary_data_output")
    outputs = body.get("outputs")
    if outputs is None:
        return parsed
    if not isinstance(outputs, list):
        raise InvalidInput("must be a list of {name, parameters?}", field="outputs")
    for i, output in enumerate(outputs):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidInput("must be an object with a string `name`", field=f"outputs[{i}]")
        out_params = output.get("parameters", {})
        if not isinstance(out_params, dict):
            raise InvalidInput("must be an object", field=f"outputs[{i}].parameters")
        if "binary_data" in out_params:
            flag = _flag(out_params["binary_data"], f"outputs[{i}].parameters.binary_data")
            parsed.binary[output["name"]] = flag
    return parsed


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput("must be true or false", field=where)
    return value


__all__ = [
    "HEADER",
    "InferBody",
    "attach_binary",
    "read_infer_body",
    "tensor_bytes",
    "tensor_from_bytes",
]
