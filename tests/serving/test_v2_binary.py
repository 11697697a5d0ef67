"""The v2 binary tensor extension, spoken by tritonclient.http unchanged (binary in and out at
its defaults, JSON, and mixed) for every datatype, and refused clearly when a body lies."""

from __future__ import annotations

import json
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from frugal.config import parse_config
from frugal.runtimes import NUMPY_DTYPES
from tests.conftest import ServerInThread, digits_config
from tests.waiting import eventually

DATATYPES = [*NUMPY_DTYPES, "BYTES"]


class Echo:
    """Answers each item with itself: what went in must come back, bit for bit."""

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        return list(items)


def make_echo() -> Echo:
    return Echo()


def echo_models() -> list[dict[str, Any]]:
    models = []
    for datatype in DATATYPES:
        shape = [-1] if datatype == "BYTES" else [-1, 3]
        models.append({
            "name": f"echo-{datatype.lower()}", "runtime": "python",
            "factory": "tests.serving.test_v2_binary:make_echo",
            "inputs": [{"name": "x", "datatype": datatype, "shape": shape}],
        })  # fmt: skip
    return models


@pytest.fixture(scope="module")
def server(
    digits_model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerInThread]:
    tmp = tmp_path_factory.mktemp("binary")
    data = digits_config(digits_model_file, tmp, server={"max_body_bytes": 65_536})
    data["models"] += echo_models()
    with ServerInThread(parse_config(data)) as running:
        yield running


def sample(datatype: str) -> np.ndarray:
    """Two rows of three values, at the edges of the type where it has edges."""
    if datatype == "BYTES":
        return np.array(["héllo wörld", ""], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if dtype.kind == "f":
        return np.array([[0.5, -1.25, 3.0], [1e3, -0.0, 7.5]], dtype=dtype)
    info = np.iinfo(dtype)
    # UINT64 past INT64's max is left out: JSON's lists of such numbers reach numpy as float64
    # (refused as "f-kind values"), a limit of the JSON path, not of the binary one.
    top = min(int(info.max), 2**63 - 1)
    return np.array([[info.min, 0, top], [1, 2, 3]], dtype=dtype)


def infer(server: ServerInThread, datatype: str, binary_in: bool, binary_out: bool | None) -> Any:
    """tritonclient.http as a user calls it; ``binary_out=None`` asks for no output by name
    (its default: every output binary)."""
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        values = sample(datatype)
        tensor = triton.InferInput("x", list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=binary_in)
        outputs = None
        if binary_out is not None:
            outputs = [triton.InferRequestedOutput("predict", binary_data=binary_out)]
        return client.infer(f"echo-{datatype.lower()}", [tensor], outputs=outputs)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("binary_in", "binary_out"),
    [(True, None), (False, False), (True, False), (False, True)],
    ids=["defaults-binary", "json", "binary-in-json-out", "json-in-binary-out"],
)
def test_every_datatype_round_trips(
    server: ServerInThread, binary_in: bool, binary_out: bool | None
) -> None:
    for datatype in DATATYPES:
        result = infer(server, datatype, binary_in, binary_out)
        got = result.as_numpy("predict")
        want = sample(datatype)
        output = result.get_output("predict")
        assert output["datatype"] == datatype, datatype
        is_binary = binary_out is not False
        assert ("binary_data_size" in output.get("parameters", {})) == is_binary, datatype
        if datatype == "BYTES":
            text = [v.decode() if isinstance(v, bytes) else v for v in got]  # JSON: str
            assert text == list(want), datatype
        else:
            assert got.dtype == want.dtype and np.array_equal(got, want), datatype


def test_digits_at_tritonclient_defaults_match_json(server: ServerInThread, digits: Any) -> None:
    """The sklearn model at tritonclient's defaults answers what the JSON path answers."""
    x, _ = digits
    rows = x[1200:1205]
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("digits", [tensor], request_id="r-1")
    finally:
        client.close()
    via_json = httpx.post(f"{server.url}/v2/models/digits/infer", json={"inputs": [
        {"name": "pixels", "shape": list(rows.shape), "datatype": "FP32",
         "data": rows.tolist()}]}).json()  # fmt: skip
    by_name = {o["name"]: o["data"] for o in via_json["outputs"]}
    assert result.as_numpy("predict").tolist() == by_name["predict"]
    assert np.allclose(result.as_numpy("confidence"), by_name["confidence"])
    assert result.get_response()["id"] == "r-1"


def binary_body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, int]:
    raw = json.dumps(header).encode()
    return raw + b"".join(chunks), len(raw)


def digits_header(rows: int = 1, size: int | None = None) -> dict[str, Any]:
    size = rows * 64 * 4 if size is None else size
    return {"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32",
                        "parameters": {"binary_data_size": size}}],
            "parameters": {"binary_data_output": True}}  # fmt: skip


def post(server: ServerInThread, body: bytes, header_length: str, **headers: str) -> Any:
    return httpx.post(
        f"{server.url}/v2/models/digits/infer", content=body,
        headers={"inference-header-content-length": header_length,
                 "content-type": "application/octet-stream", **headers},
    )  # fmt: skip


def test_raw_binary_answer_is_charged_and_recorded(server: ServerInThread, digits: Any) -> None:
    """The answer's layout, read by hand; its cost headers and ledger row as on the JSON path."""
    x, _ = digits
    body, length = binary_body(digits_header(2), x[1200:1202].astype("<f4").tobytes())
    reply = post(server, body, str(length), **{"x-request-id": "binary-cost-1"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/octet-stream"
    head_len = int(reply.headers["inference-header-content-length"])
    head = json.loads(reply.content[:head_len])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert [o["name"] for o in head["outputs"]] == ["predict", "confidence"]
    assert sizes == [16, 16] and len(reply.content) == head_len + sum(sizes)
    assert "data" not in head["outputs"][0]
    predict = np.frombuffer(reply.content[head_len : head_len + 16], dtype="<i8")
    assert predict.tolist() == [int(v) for v in np.asarray(digits[1][1200:1202])]
    assert reply.headers["x-frugal-model"] == "digits:1"
    assert float(reply.headers["x-frugal-cost-usd"]) > 0
    ledger = server.app.config.ledger.path

    def booked() -> list[Any]:
        db = sqlite3.connect(ledger)
        try:
            return db.execute(
                "SELECT status, model, version, cost_usd FROM requests WHERE request_id = ?",
                ("binary-cost-1",),
            ).fetchall()
        finally:
            db.close()

    eventually(lambda: booked() != [], "the binary request's ledger row")
    [(status, model, version, cost_usd)] = booked()
    assert (status, model, version) == (200, "digits", "1") and cost_usd > 0


ROW = np.zeros(64, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        # the header length: past the body, negative, huge, not a number
        (
            lambda: (binary_body(digits_header(), ROW)[0], "99999"),
            "Inference-Header-Content-Length",
            "but the body has",
        ),
        (
            lambda: (binary_body(digits_header(), ROW)[0], "-5"),
            "Inference-Header-Content-Length",
            "non-negative whole number",
        ),
        (
            lambda: (binary_body(digits_header(), ROW)[0], "9" * 40),
            "Inference-Header-Content-Length",
            "non-negative whole number",
        ),
        (
            lambda: (binary_body(digits_header(), ROW)[0], "1e3"),
            "Inference-Header-Content-Length",
            "non-negative whole number",
        ),
        # a header length that cuts the JSON
        (lambda: (binary_body(digits_header(), ROW)[0], "10"), "body", "not valid JSON"),
        # a tensor shorter than its binary_data_size says (truncated)
        (
            lambda: (lambda b: (b[0][:-10], str(b[1])))(binary_body(digits_header(), ROW)),
            "inputs[0].parameters.binary_data_size",
            "past the end of the body",
        ),
        # bytes left over that no input claims
        (
            lambda: (lambda b: (b[0], str(b[1])))(binary_body(digits_header(), ROW, b"xx")),
            "body",
            "belong to no input",
        ),
        # binary_data_size not matching shape x dtype (and consistent with the body)
        (
            lambda: (lambda b: (b[0], str(b[1])))(binary_body(digits_header(size=200), ROW[:200])),
            "inputs[0].parameters.binary_data_size",
            "needs 256",
        ),
        # binary_data_size that is not a size
        (
            lambda: (lambda b: (b[0], str(b[1])))(binary_body(digits_header(size=-4), ROW)),
            "inputs[0].parameters.binary_data_size",
            "non-negative integer",
        ),
        # a huge shape: exact integers, no wrap-around to a size that matches
        (
            lambda: (lambda h: (lambda b: (b[0], str(b[1])))(binary_body(h, ROW)))(
                {
                    "inputs": [
                        {
                            "name": "pixels",
                            "shape": [2**32, 2**32, 2**62],
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": 256},
                        }
                    ]
                }
            ),
            "inputs[0].parameters.binary_data_size",
            "needs",
        ),
    ],
    ids=[
        "length-past-body",
        "length-negative",
        "length-huge",
        "length-not-digits",
        "length-cuts-json",
        "truncated-tensor",
        "trailing-bytes",
        "size-vs-shape",
        "size-negative",
        "shape-overflow",
    ],
)
def test_hostile_binary_bodies_are_400_naming_the_field(
    server: ServerInThread, build: Any, field: str, says: str
) -> None:
    body, header_length = build()
    reply = post(server, body, header_length)
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["field"] == field and says in error["error"], error


def test_bytes_elements_that_lie_are_400(server: ServerInThread) -> None:
    url = f"{server.url}/v2/models/echo-bytes/infer"
    cases = {
        "says 100 bytes": struct.pack("<I", 100) + b"short",
        "cut off in its 4-byte length": struct.pack("<I", 2) + b"ok" + b"\x01\x00",
        "not UTF-8": struct.pack("<I", 2) + b"\xff\xfe",
    }
    for says, raw in cases.items():
        header = {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES",
                              "parameters": {"binary_data_size": len(raw)}}]}  # fmt: skip
        head = json.dumps(header).encode()
        reply = httpx.post(
            url, content=head + raw, headers={"inference-header-content-length": str(len(head))}
        )
        assert reply.status_code == 400 and says in reply.json()["error"], reply.text
        assert reply.json()["field"].startswith("inputs[0]")


def test_binary_body_over_the_limit_is_413(server: ServerInThread) -> None:
    rows = 300  # 300 x 256 bytes: over the server's 65,536
    body, length = binary_body(digits_header(rows), ROW * rows)
    reply = post(server, body, str(length))
    assert reply.status_code == 413 and reply.json()["field"] == "body"


def test_bad_requests_through_tritonclient_say_why(server: ServerInThread) -> None:
    """The client shows the server's message: a wrong datatype names the input."""
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        tensor = triton.InferInput("pixels", [1, 64], "FP64")
        tensor.set_data_from_numpy(np.zeros((1, 64), dtype=np.float64))
        with pytest.raises(InferenceServerException, match="does not match the model's FP32"):
            client.infer("digits", [tensor])
    finally:
        client.close()


def test_binary_output_flags_must_be_booleans(server: ServerInThread) -> None:
    body = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                        "data": [0.0] * 64}], "outputs": [{"name": "predict",
                        "parameters": {"binary_data": "yes"}}]}  # fmt: skip
    reply = httpx.post(f"{server.url}/v2/models/digits/infer", json=body)
    assert reply.status_code == 400
    assert reply.json()["field"] == "outputs[0].parameters.binary_data"


def test_uint64_past_int64_round_trips_in_binary(server: ServerInThread) -> None:
    values = np.array([[0, 2**63, 2**64 - 1]], dtype=np.uint64)
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        tensor = triton.InferInput("x", [1, 3], "UINT64")
        tensor.set_data_from_numpy(values)
        got = client.infer("echo-uint64", [tensor]).as_numpy("predict")
    finally:
        client.close()
    assert got.dtype == np.uint64 and got.tolist() == values.tolist()
