"""A gRPC call as one request to the app's own ASGI dispatcher, and its answer back.

Why this way: gRPC must go through the very same shedding, admission, cache, routing, batcher,
ledger and cost headers as HTTP. Each gRPC method is therefore the HTTP request it corresponds
to (ModelInfer is ``POST /v2/models/{name}/infer`` with a binary-extension body, serving/
v2_binary.py), handed to ``FrugalApp.__call__`` in-process: no socket, no copy of the path.
The answer's status, headers and body come back here and become the gRPC response, its status
code and its metadata.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from frugal.errors import InvalidInput
from frugal.serving.exchange import HEADERS_READ
from frugal.serving.v2_binary import HEADER

_LENGTH = struct.Struct("<I")
# Headers a gRPC caller may set through metadata: those inference reads, but not the ones that
# describe the body (the bridge writes the body, so it writes those).
PASSED_METADATA = frozenset(h.decode() for h in HEADERS_READ) - {
    "content-length", "content-type", HEADER, "x-frugal-deadline-ms",
}  # fmt: skip
# The typed ``contents`` field of each datatype (FP16 has none: raw_input_contents only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


@dataclass(slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call_app(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"",
    client: str | None = None,
) -> HttpAnswer:  # fmt: skip
    """One request to ``app`` (an ASGI callable), answered in-process. ``headers`` are ASGI's
    raw (lower-case name, value) pairs, built once by the caller; content-length is added here."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    answer = HttpAnswer(500, {}, b"")
    chunks: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                              for k, v in message.get("headers", ())}  # fmt: skip
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    if body:
        headers.append((b"content-length", b"%d" % len(body)))
    scope = {
        "type": "http", "asgi": _ASGI, "http_version": "2", "method": method,
        "scheme": "http", "path": path, "raw_path": _raw_path(path), "query_string": b"",
        "root_path": "", "headers": headers, "state": {},
        "client": (client, 0) if client is not None else None, "server": None,
    }  # fmt: skip
    await app(scope, receive, send)
    answer.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return answer


_ASGI = {"version": "3.0"}


@functools.lru_cache(maxsize=1024)
def _raw_path(path: str) -> bytes:
    """The percent-encoded path (a handful of distinct paths: one per model and method)."""
    return quote(path).encode()


def raw_headers(metadata: Any, passed: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """The gRPC call's metadata that a caller may pass (``passed``) as ASGI raw header pairs; a
    name sent twice keeps its last value, as the dict it replaced did."""
    pairs = [(k, v) for k, v in metadata if k in passed]
    if len({k for k, _ in pairs}) < len(pairs):
        pairs = list(dict(pairs).items())
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def model_path(name: str, version: str, tail: str = "") -> str:
    """``/v2/models/{name}[/versions/{version}]{tail}``; a name with a slash is not a model."""
    if not name or "/" in name or "/" in version:
        raise InvalidInput("must be a model name and version without a slash", field="name")
    path = f"/v2/models/{name}"
    if version:
        path += f"/versions/{version}"
    return path + tail


def infer_body(request: Any) -> tuple[bytes, int]:
    """A ModelInferRequest as a v2 binary-extension body (and its JSON header's length): raw
    contents and BYTES go as binary, typed numeric contents as JSON ``data`` (so the JSON path's
    range checks apply to them); every output is asked for in binary."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"has {len(raw)} entries for {len(request.inputs)} inputs: give every input's bytes "
            "there, or none", field="raw_input_contents",
        )  # fmt: skip
    inputs = []
    chunks: list[bytes] = []
    for i, tensor in enumerate(request.inputs):
        entry: dict[str, Any] = {
            "name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
        }  # fmt: skip
        if raw:
            chunk: bytes | None = raw[i]
        else:
            chunk = _typed(tensor, entry, f"inputs[{i}]")
        if chunk is not None:
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        inputs.append(entry)
    header: dict[str, Any] = {"inputs": inputs, "parameters": {"binary_data_output": True}}
    if request.id:
        header["id"] = request.id
    head = orjson.dumps(header)
    return b"".join([head, *chunks]), len(head)


def _typed(tensor: Any, entry: dict[str, Any], where: str) -> bytes | None:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidInput(
            f"{tensor.datatype} has no typed contents field: send it in raw_input_contents",
            field=f"{where}.contents",
        )  # fmt: skip
    values: Sequence[Any] = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(v)) + v for v in values)
    entry["data"] = list(values)
    return None


def infer_response(answer: HttpAnswer, response: Any, requested: Sequence[str]) -> Any:
    """The app's binary answer into a ModelInferResponse (``response``, empty): outputs with
    their bytes in ``raw_output_contents``, as Triton answers; only ``requested`` ones if any."""
    header_length = int(answer.headers[HEADER])
    head = orjson.loads(memoryview(answer.body)[:header_length])
    response.model_name = head["model_name"]
    response.model_version = head["model_version"]
    if "id" in head:
        response.id = head["id"]
    offset = header_length
    for tensor in head["outputs"]:
        size = tensor["parameters"]["binary_data_size"]
        chunk = answer.body[offset : offset + size]
        offset += size
        if requested and tensor["name"] not in requested:
            continue
        out = response.outputs.add()
        out.name, out.datatype = tensor["name"], tensor["datatype"]
        out.shape.extend(tensor["shape"])
        response.raw_output_contents.append(chunk)
    return response


__all__ = [
    "CONTENTS_FIELD",
    "PASSED_METADATA",
    "HttpAnswer",
    "call_app",
    "infer_body",
    "infer_response",
    "model_path",
    "raw_headers",
]
