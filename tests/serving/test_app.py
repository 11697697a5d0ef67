"""The HTTP routes of a real server on 127.0.0.1: protocols, headers and every error code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.config import parse_config
from tests.conftest import digits_config


@pytest.fixture
def server(serve: Any, digits_model_file: Path, tmp_path: Path) -> Any:
    return serve(parse_config(digits_config(digits_model_file, tmp_path)))


def v2_body(rows: np.ndarray, **tensor: Any) -> dict[str, Any]:
    t = {"name": "pixels", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}
    t.update(tensor)
    return {"inputs": [t]}


def test_v2_server_routes(server: Any) -> None:
    """Server metadata, liveness and readiness answer as the Open Inference Protocol says."""
    meta = httpx.get(f"{server.url}/v2").json()
    assert meta["name"] == "frugal" and "version" in meta and meta["extensions"] == []
    assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_v2_model_metadata_and_ready(server: Any) -> None:
    """Model metadata and readiness are served with and without a version in the path."""
    for path in ("/v2/models/digits", "/v2/models/digits/versions/1"):
        meta = httpx.get(server.url + path).json()
        assert meta["name"] == "digits" and meta["versions"] == ["1"]
        assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
        ready = httpx.get(server.url + path + "/ready")
        assert ready.status_code == 200 and ready.json()["ready"] is True


def test_v2_infer_nested_and_flat_data(server: Any, digits: Any) -> None:
    """Infer accepts nested and flat row-major data and answers labels with confidences."""
    x, y = digits
    rows = x[1200:1205]
    for data in (rows.tolist(), rows.reshape(-1).tolist()):
        r = httpx.post(
            f"{server.url}/v2/models/digits/versions/1/infer",
            json={"id": "abc", **v2_body(rows, data=data)},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_name"] == "digits" and body["model_version"] == "1"
        assert body["id"] == "abc"
        predict, confidence = body["outputs"]
        assert predict["shape"] == [5] and predict["datatype"] == "INT64"
        assert np.mean(np.array(predict["data"]) == y[1200:1205]) >= 0.8
        assert all(0 < c <= 1 for c in confidence["data"])


def test_simple_json_predict_headers(server: Any, digits: Any) -> None:
    """The simple JSON route answers predictions with cost, model and request id headers."""
    x, _ = digits
    r = httpx.post(
        f"{server.url}/v1/endpoints/digits/predict",
        json={"instances": x[1200:1203].tolist()},
        headers={"x-request-id": "req-42"},
    )
    assert r.status_code == 200
    assert len(r.json()["predictions"]) == 3
    assert r.headers["x-request-id"] == "req-42"
    assert r.headers["x-frugal-model"] == "digits:1"
    assert float(r.headers["x-frugal-cost-usd"]) > 0
    generated = httpx.post(
        f"{server.url}/v1/endpoints/digits/predict", json={"instances": x[:1].tolist()}
    ).headers["x-request-id"]
    assert len(generated) == 16


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/endpoints/digits/predict", b"{not json", 400, "body"),
        ("/v1/endpoints/digits/predict", b"", 400, "body"),
        ("/v1/endpoints/digits/predict", b'{"instances": []}', 400, "instances"),
        ("/v1/endpoints/digits/predict", b'{"instances": [[1, 2, 3]]}', 400, "instances[0]"),
        ("/v1/endpoints/digits/predict", b'{"instances": [["a"]]}', 400, "instances[0]"),
        ("/v2/models/digits/infer", b'{"inputs": [{"name": "pixels"}]}', 400, "inputs[0].shape"),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "INT8", "data": []}]}',
            400,
            "inputs[0].datatype",
        ),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "pixels", "shape": [1, 3], "datatype": "FP32", '
            b'"data": [1, 2, 3]}]}',
            400,
            "inputs[0].shape",
        ),
        (
            "/v2/models/digits/infer",
            b'{"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [1]}]}',
            400,
            "inputs[0].data",
        ),
        ("/v2/models/nope/infer", b"{}", 404, None),
        ("/v2/models/digits/versions/9/infer", b"{}", 404, None),
        ("/v1/endpoints/nope/predict", b"{}", 404, None),
        ("/no/such/route", b"{}", 404, "path"),
    ],
)
def test_bad_requests_get_json_errors(
    server: Any, path: str, body: bytes, status: int, field: str | None
) -> None:
    """Each bad request gets its status and a JSON body naming the field and the request id."""
    r = httpx.post(server.url + path, content=body)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["error"] and payload["request_id"]
    assert payload.get("field") == field
    assert "Traceback" not in r.text


def test_body_over_limit_is_413(serve: Any, digits_model_file: Path, tmp_path: Path) -> None:
    """A body over server.max_body_bytes is refused with 413 before it is parsed."""
    cfg = digits_config(digits_model_file, tmp_path, server={"max_body_bytes": 1000})
    server = serve(parse_config(cfg))
    r = httpx.post(f"{server.url}/v1/endpoints/digits/predict", content=b"[" + b"1," * 2000 + b"1]")
    assert r.status_code == 413
    assert r.json()["field"] == "body"


def test_method_not_allowed_is_json(server: Any) -> None:
    """A wrong method gets 405 with a JSON body."""
    r = httpx.get(f"{server.url}/v1/endpoints/digits/predict")
    assert r.status_code == 405 and r.json()["field"] == "method"


def test_metrics_count_requests(server: Any, digits: Any) -> None:
    """/metrics exposes request counts, batch sizes, queue depth and cost in USD."""
    x, _ = digits
    httpx.post(f"{server.url}/v1/endpoints/digits/predict", json={"instances": x[:2].tolist()})
    text = httpx.get(f"{server.url}/metrics").text
    assert 'frugal_requests_total{endpoint="digits",model="digits:1",status="200"} 1.0' in text
    for name in (
        "frugal_batch_size_bucket",
        "frugal_queue_depth",
        "frugal_cost_usd_total",
        "frugal_busy_seconds_total",
        "frugal_utilization",
    ):
        assert name in text
