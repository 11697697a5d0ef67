"""The Open Inference Protocol over gRPC, spoken by tritonclient.grpc unchanged, against a live
server: the same answers, costs, ledger rows and refusals as HTTP, with gRPC status codes."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import yaml
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from frugal.access import KeyStore
from frugal.config import parse_config
from frugal.optimize import free_port
from tests.conftest import TEST_INSTANCE, ServerInThread, ServerProcess, digits_config
from tests.serving.test_shutdown import SLOW_MODEL, queue_depth
from tests.waiting import eventually

GATE = threading.Event()  # the gated model answers once the test opens it


class Gated:
    """Echoes each item once GATE is open: holds requests in flight for as long as a test
    needs, with no sleep."""

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        GATE.wait(timeout=30)
        return list(items)


def make_gated() -> Gated:
    return Gated()


class Echo:
    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        return list(items)


def make_echo() -> Echo:
    return Echo()


def grpc_config(model_file: Path, tmp_path: Path, **server: Any) -> dict[str, Any]:
    data = digits_config(model_file, tmp_path, server={"grpc_port": free_port(), **server})
    data["models"] += [
        {"name": "gated", "runtime": "python", "factory": "tests.serving.test_grpc:make_gated",
         "inputs": [{"name": "x", "datatype": "INT64", "shape": [-1, 1]}],
         "batching": {"max_batch_size": 1, "max_wait_ms": 1}},
        {"name": "words", "runtime": "python", "factory": "tests.serving.test_grpc:make_echo",
         "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]},
    ]  # fmt: skip
    return data


@pytest.fixture(scope="module")
def server(
    digits_model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerInThread]:
    tmp = tmp_path_factory.mktemp("grpc")
    with ServerInThread(parse_config(grpc_config(digits_model_file, tmp))) as running:
        yield running


def client_of(server: ServerInThread) -> Any:
    return triton.InferenceServerClient(f"127.0.0.1:{server.app.config.server.grpc_port}")


def digits_input(rows: np.ndarray) -> Any:
    tensor = triton.InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return tensor


def test_tritonclient_grpc_unchanged(server: ServerInThread, digits: Any) -> None:
    """Health, metadata and inference as a Triton user calls them; answers equal HTTP's."""
    x, _ = digits
    rows = x[1200:1205]
    with client_of(server) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
        meta = client.get_server_metadata()
        assert meta.name == "frugal"
        model = client.get_model_metadata("digits")
        assert model.name == "digits" and list(model.versions) == ["1"]
        assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
            ("pixels", "FP32", [-1, 64])
        ]
        result = client.infer("digits", [digits_input(rows)], request_id="g-1")
        assert result.get_response().id == "g-1"
        words = triton.InferInput("text", [2], "BYTES")
        words.set_data_from_numpy(np.array([b"h\xc3\xa9llo", b""], dtype=object))
        echoed = client.infer("words", [words]).as_numpy("predict")
    tensor = {"name": "pixels", "shape": [5, 64], "datatype": "FP32", "data": rows.tolist()}
    via_http = httpx.post(f"{server.url}/v2/models/digits/infer", json={"inputs": [tensor]}).json()
    by_name = {o["name"]: o["data"] for o in via_http["outputs"]}
    assert result.as_numpy("predict").tolist() == by_name["predict"]
    assert np.allclose(result.as_numpy("confidence"), by_name["confidence"])
    assert echoed.tolist() == ["héllo".encode(), b""]


def stub_of(server: ServerInThread) -> tuple[Any, Any]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.app.config.server.grpc_port}")
    return channel, service_pb2_grpc.GRPCInferenceServiceStub(channel)


def test_typed_contents_and_metadata_carry_cost_model_and_id(
    server: ServerInThread, digits: Any
) -> None:
    """Typed ``contents`` (not raw) work too; cost, model and id come back as metadata and the
    call is one ledger row like an HTTP one."""
    x, y = digits
    request = service_pb2.ModelInferRequest(model_name="digits")
    tensor = request.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    tensor.contents.fp32_contents.extend(x[1300].tolist())
    channel, stub = stub_of(server)
    with channel:
        response, call = stub.ModelInfer.with_call(
            request, metadata=(("x-request-id", "grpc-typed-1"),)
        )
    metadata = dict(call.trailing_metadata())
    assert metadata["x-request-id"] == "grpc-typed-1"
    assert metadata["x-frugal-model"] == "digits:1"
    assert float(metadata["x-frugal-cost-usd"]) > 0
    assert [o.name for o in response.outputs] == ["predict", "confidence"]
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [y[1300]]
    ledger = server.app.config.ledger.path

    def booked() -> list[Any]:
        db = sqlite3.connect(ledger)
        try:
            return db.execute("SELECT status, model FROM requests WHERE request_id = ?",
                              ("grpc-typed-1",)).fetchall()  # fmt: skip
        finally:
            db.close()

    eventually(lambda: booked() != [], "the gRPC call's ledger row")
    assert booked() == [(200, "digits")]


def error_of(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_bad_input_is_invalid_argument_with_the_http_message(server: ServerInThread) -> None:
    with client_of(server) as client:
        tensor = triton.InferInput("pixels", [1, 64], "FP64")
        tensor.set_data_from_numpy(np.zeros((1, 64), dtype=np.float64))
        error = error_of(lambda: client.infer("digits", [tensor]))
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
        assert "does not match the model's FP32" in error.message()
        missing = error_of(lambda: client.get_model_metadata("nope"))
        assert missing.status() == "StatusCode.NOT_FOUND"
        wrong = triton.InferInput("pixels", [1, 64], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 64), dtype=np.float32))
        raw = error_of(lambda: client.infer("nope", [wrong]))
        assert raw.status() == "StatusCode.NOT_FOUND"


def test_auth_by_bearer_metadata(digits_model_file: Path, tmp_path: Path, digits: Any) -> None:
    data = grpc_config(digits_model_file, tmp_path)
    data["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    secret = KeyStore(tmp_path / "keys.db").create("caller", "user")[1]
    rows = digits[0][:1]
    with ServerInThread(parse_config(data)) as server, client_of(server) as client:
        assert client.is_server_live()  # health needs no key, as on HTTP
        no_key = error_of(lambda: client.infer("digits", [digits_input(rows)]))
        assert no_key.status() == "StatusCode.UNAUTHENTICATED"
        bad = {"authorization": "Bearer not-a-key"}
        wrong = error_of(lambda: client.infer("digits", [digits_input(rows)], headers=bad))
        assert wrong.status() == "StatusCode.UNAUTHENTICATED"
        good = {"authorization": f"Bearer {secret}"}
        result = client.infer("digits", [digits_input(rows)], headers=good)
        assert result.as_numpy("predict").shape == (1,)


def collect(into: list[Any]) -> Any:
    """An async_infer callback keeping (result, error)."""

    def callback(result: Any, error: Any) -> None:
        into.append((result, error))

    return callback


def gated_input(value: int) -> Any:
    tensor = triton.InferInput("x", [1, 1], "INT64")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.int64))
    return tensor


def test_grpc_deadline_is_frugal_deadline(server: ServerInThread) -> None:
    """A call queued behind a held one past its gRPC deadline: DEADLINE_EXCEEDED, and the
    ledger records frugal's 504 (the deadline reached the batcher's queue), not a crash."""
    GATE.clear()
    held: list[Any] = []
    with client_of(server) as client:
        try:
            client.async_infer("gated", [gated_input(1)],
                               callback=collect(held))  # fmt: skip
            eventually(lambda: server.app._open == 1, "the first call to be in flight")
            error = error_of(lambda: client.infer(
                "gated", [gated_input(2)], client_timeout=0.3,
                headers={"x-request-id": "grpc-late-1"},
            ))  # fmt: skip
            assert error.status() == "StatusCode.DEADLINE_EXCEEDED"
        finally:
            GATE.set()
        eventually(lambda: held != [], "the held call's answer")
    assert [error for _, error in held] == [None]
    ledger = server.app.config.ledger.path

    def statuses() -> list[int]:
        db = sqlite3.connect(ledger)
        try:
            return [s for (s,) in db.execute(
                "SELECT status FROM requests WHERE request_id = 'grpc-late-1'")]  # fmt: skip
        finally:
            db.close()

    eventually(lambda: statuses() != [], "the late call's ledger row")
    assert statuses() == [504]


def test_overload_is_resource_exhausted_with_retry_info(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """Past server.max_concurrency a call is refused at once: RESOURCE_EXHAUSTED, with the
    HTTP path's message and Retry-After as metadata (and gRPC's retry pushback)."""
    data = grpc_config(digits_model_file, tmp_path, max_concurrency=1)
    GATE.clear()
    with ServerInThread(parse_config(data)) as server, client_of(server) as client:
        held: list[Any] = []
        client.async_infer(
            "gated", [gated_input(7)], callback=lambda result, error: held.append((result, error))
        )
        try:
            eventually(lambda: server.app._open == 1, "the first call to be in flight")
            channel, stub = stub_of(server)
            with channel:
                request = service_pb2.ModelInferRequest(model_name="gated")
                request.inputs.add(name="x", datatype="INT64", shape=[1, 1])
                request.raw_input_contents.append(np.array([8], dtype="<i8").tobytes())
                with pytest.raises(grpc.RpcError) as caught:
                    stub.ModelInfer(request)
        finally:
            GATE.set()
        error = caught.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrency" in error.details()
        metadata = dict(error.trailing_metadata())
        assert int(metadata["retry-after"]) >= 1
        assert int(metadata["grpc-retry-pushback-ms"]) >= 1000
        eventually(lambda: held != [], "the held call's answer")
        result, failure = held[0]
        assert failure is None and result.as_numpy("predict").tolist() == [[7]]


def open_requests(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("frugal_open_requests "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_drain_answers_queued_grpc_calls(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """`frugal serve --grpc-port`: with 60 gRPC calls queued behind a slow model, SIGTERM answers
    every one (OK), records them, stops the gRPC server and exits 0."""
    (tmp_path / "slow_digits.py").write_text(SLOW_MODEL)
    config = {
        "instance": TEST_INSTANCE,
        "models": [{
            "name": "slow", "runtime": "python", "factory": "slow_digits:make",
            "path": str(tmp_path),
            "options": {"model_path": str(digits_model_file), "delay_s": 0.1},
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
            "batching": {"max_batch_size": 4, "max_queue": 1000, "timeout_ms": 60000},
        }],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }  # fmt: skip
    (tmp_path / "frugal.yaml").write_text(yaml.safe_dump(config))
    grpc_port = free_port()
    x, y = digits
    n = 60
    answers: list[Any] = []
    with ServerProcess(tmp_path / "frugal.yaml", "--log-level", "warning",
                       "--grpc-port", str(grpc_port)) as server:  # fmt: skip
        assert server.process is not None
        with triton.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
            for i in range(n):
                client.async_infer("slow", [digits_input(x[i : i + 1])],
                                   callback=collect(answers))  # fmt: skip
            # Every call inside the server (open or answered) and a queue behind the model:
            # a call still on its way when the drain starts is refused, not drained.
            eventually(lambda: open_requests(server.url) + len(answers) >= n
                       and queue_depth(server.url) >= 10, "60 gRPC calls in, 10 queued",
                       timeout_s=30)  # fmt: skip
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=60) == 0
            eventually(lambda: len(answers) == n, "every call's answer")
    assert [error for _, error in answers] == [None] * n
    assert sorted(int(r.as_numpy("predict")[0]) for r, _ in answers) == sorted(
        int(v) for v in y[:n]
    )
    db = sqlite3.connect(tmp_path / "ledger.db")
    try:
        assert db.execute("SELECT COUNT(*), SUM(status = 200) FROM requests").fetchone() == (n, n)
    finally:
        db.close()
    assert "Traceback" not in server.log_text()


def test_grpc_port_taken_is_a_clear_error(tmp_path: Path, digits_model_file: Path) -> None:
    (tmp_path / "frugal.yaml").write_text(
        yaml.safe_dump(digits_config(digits_model_file, tmp_path))
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "frugal", "serve", str(tmp_path / "frugal.yaml"),
             "--port", str(free_port()), "--grpc-port", str(taken)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--grpc-port" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (
            lambda r: (
                r.inputs.add(name="pixels", datatype="FP32", shape=[1, 64]),
                r.raw_input_contents.extend([b"\0" * 256, b"\0" * 4]),
            ),
            "has 2 entries for 1 inputs",
        ),
        (
            lambda r: (
                r.inputs.add(name="pixels", datatype="FP32", shape=[1, 64]),
                r.raw_input_contents.append(b"\0" * 200),
            ),
            "binary_data_size is 200 bytes, but shape [1, 64] of FP32 needs 256",
        ),
        (
            lambda r: r.inputs.add(name="pixels", datatype="FP32", shape=[1, -64]),
            "must be a list of non-negative integers",
        ),
        (
            lambda r: r.inputs.add(name="pixels", datatype="FP16", shape=[1, 64]),
            "FP16 has no typed contents field",
        ),
        (lambda r: setattr(r, "model_name", "a/b"), "without a slash"),
    ],
    ids=["raw-count", "raw-size", "negative-shape", "fp16-typed", "slash-in-name"],
)
def test_malformed_calls_are_invalid_argument(
    server: ServerInThread, build: Any, says: str
) -> None:
    request = service_pb2.ModelInferRequest(model_name="digits")
    build(request)
    channel, stub = stub_of(server)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in caught.value.details()
    assert dict(caught.value.trailing_metadata())["x-request-id"]


def test_unserved_methods_are_unimplemented(server: ServerInThread) -> None:
    with client_of(server) as client:
        error = error_of(lambda: client.get_model_config("digits"))
    assert error.status() == "StatusCode.UNIMPLEMENTED"
    assert "ModelConfig is not served" in error.message()
