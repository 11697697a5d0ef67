"""The drift check on a real server: a cascade whose gate lets a weak small model answer too
much is tightened by labels fed back over HTTP, and by the shadow check alone (its cost booked
as shadow spend); every verdict is in the audit log and /metrics; bad feedback gets a clear
error naming its field."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.access import AuditLog, KeyStore
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from tests.conftest import TEST_INSTANCE
from tests.optimize.cascades import train_digits_cascade
from tests.waiting import eventually

DRIFT = {"max_drop": 0.05, "confidence": 0.9, "window": 300, "min_items": 60, "step": 0.1,
         "limit": 0.95}  # fmt: skip


@pytest.fixture(scope="module")
def cascade_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An under-trained logistic regression (~91%) before a 5-NN, on shuffled digits."""
    return train_digits_cascade(tmp_path_factory.mktemp("drift"))


def config(folder: Path, tmp_path: Path, *, auth: bool = False, **drift: Any) -> dict[str, Any]:
    inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]
    models = [
        {"name": name, "runtime": "sklearn", "path": str(folder / f"{name}.joblib"),
         "sha256": sha256_of(folder / f"{name}.joblib"), "inputs": inputs,
         "batching": {"max_batch_size": 32, "max_wait_ms": 1}}
        for name in ("small", "large")
    ]  # fmt: skip
    cascade = [{"model": "small", "accept": {"confidence": ">= 0.3"}}, {"model": "large"}]
    settings: dict[str, Any] = {
        "instance": TEST_INSTANCE,
        "models": models,
        "endpoints": [
            {"name": "digits", "route": {"cascade": cascade, "drift": DRIFT | drift}},
            {"name": "plain", "model": "large"},
        ],
        "ledger": {
            "path": str(tmp_path / "ledger.db"),
            "flush_interval_ms": 10,
            "cost_interval_ms": 20,
        },
    }
    if auth:
        settings["auth"] = {"keys": str(tmp_path / "keys.db")}
    return settings


def data(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    loaded = np.load(folder / "data.npz")
    return loaded["X"], loaded["y"]


def threshold(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r'frugal_cascade_gate_threshold\{endpoint="digits",model="small:1"\} (\S+)',
                      text)  # fmt: skip
    assert found is not None, text[-2000:]
    return float(found.group(1))


def test_labels_fed_back_tighten_the_gate_and_are_audited(
    serve: Any, cascade_dir: Path, tmp_path: Path
) -> None:
    server = serve(parse_config(config(cascade_dir, tmp_path)))
    x, y = data(cascade_dir)
    assert threshold(server.url) == 0.3
    for i in range(120):
        body = {"instances": [x[i].tolist()]}
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict", json=body,
                       headers={"x-request-id": f"q{i}"})  # fmt: skip
        assert r.status_code == 200
        fed = httpx.post(f"{server.url}/v1/endpoints/digits/feedback",
                         json={"request_id": f"q{i}", "label": int(y[i])})  # fmt: skip
        assert fed.status_code == 200, fed.text
        assert fed.json()["judged"] == 1
    # The small model, accepted at >= 0.3, is wrong on far more than 5% of what it answers.
    assert threshold(server.url) >= 0.4
    entries = eventually(
        lambda: [
            e
            for e in AuditLog(tmp_path / "ledger.db").entries()
            if e.action == "cascade.drift.tighten"
        ],
        "the tighten in the audit log",
    )
    first = entries[0]
    assert first.actor == "drift-check" and first.target == "digits"
    assert first.detail["thresholds"] == {"small:1": {"old": 0.3, "new": 0.4}}
    assert first.detail["bound"] > 0.05 and first.detail["judged"] >= 59
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'frugal_cascade_drift_actions_total{action="tighten",endpoint="digits"}' in metrics
    assert re.search(r'frugal_cascade_drift_judged_items_total\{by="label",endpoint="digits"\} '
                     r"120\.0", metrics)  # fmt: skip


def test_the_shadow_check_alone_tightens_and_its_cost_is_shadow_spend(
    serve: Any, cascade_dir: Path, tmp_path: Path
) -> None:
    server = serve(parse_config(config(cascade_dir, tmp_path, shadow_share=1.0)))
    x, _ = data(cascade_dir)
    for start in range(0, 200, 4):
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                       json={"instances": x[start : start + 4].tolist()})  # fmt: skip
        assert r.status_code == 200
    eventually(lambda: threshold(server.url) >= 0.4, "the shadow check to tighten the gate")

    def shadow_rows() -> list[tuple[str, float]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return db.execute(
                "SELECT model, cost_usd FROM requests WHERE shadow = 1 AND endpoint = 'digits'"
            ).fetchall()

    rows = eventually(shadow_rows, "the shadow check's ledger rows")
    # The ledger's model column is the name; version has its own column.
    assert {model for model, _ in rows} == {"large"} and all(usd > 0 for _, usd in rows)
    metrics = httpx.get(f"{server.url}/metrics").text
    spent = re.search(r'frugal_cascade_drift_cost_usd_total\{endpoint="digits"\} (\S+)', metrics)
    assert spent is not None and float(spent.group(1)) > 0


def test_feedback_errors_name_their_field(serve: Any, cascade_dir: Path, tmp_path: Path) -> None:
    server = serve(parse_config(config(cascade_dir, tmp_path)))
    x, _ = data(cascade_dir)
    httpx.post(f"{server.url}/v1/endpoints/digits/predict",
               json={"instances": x[:2].tolist()}, headers={"x-request-id": "two"})  # fmt: skip
    feedback = f"{server.url}/v1/endpoints/digits/feedback"
    cases = [
        ("/v1/endpoints/nope/feedback", {"request_id": "two", "labels": [1, 2]}, 404, None),
        ("/v1/endpoints/plain/feedback", {"request_id": "two", "labels": [1, 2]}, 404, "endpoint"),
        (feedback, {"labels": [1, 2]}, 400, "request_id"),
        (feedback, {"request_id": "two"}, 400, "labels"),
        (feedback, {"request_id": "two", "label": 1, "labels": [1]}, 400, "labels"),
        (feedback, {"request_id": "two", "labels": [1, {"a": 1}]}, 400, "labels[1]"),
        (feedback, {"request_id": "two", "labels": [1]}, 400, "labels"),
        (feedback, {"request_id": "two", "labels": [1, 2], "x": 1}, 400, "x"),
        (feedback, {"request_id": "never", "labels": [1]}, 404, "request_id"),
    ]
    for url, body, status, field in cases:
        r = httpx.post(url if url.startswith("http") else server.url + url, json=body)
        assert r.status_code == status, (body, r.text)
        if field is not None:
            assert r.json()["field"] == field, (body, r.text)
    bad = httpx.post(feedback, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["field"] == "body"
    ok = httpx.post(feedback, json={"request_id": "two", "labels": [None, 3]})
    assert ok.status_code == 200 and ok.json()["judged"] <= 1


def test_only_the_key_that_asked_may_label(serve: Any, cascade_dir: Path, tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    alice = {"authorization": f"Bearer {store.create('alice', 'user')[1]}"}
    mallory = {"authorization": f"Bearer {store.create('mallory', 'user')[1]}"}
    server = serve(parse_config(config(cascade_dir, tmp_path, auth=True)))
    x, y = data(cascade_dir)
    predict = f"{server.url}/v1/endpoints/digits/predict"
    body = {"instances": [x[0].tolist()]}
    r = httpx.post(predict, headers=alice | {"x-request-id": "a1"}, json=body)
    assert r.status_code == 200
    feedback = f"{server.url}/v1/endpoints/digits/feedback"
    label = {"request_id": "a1", "label": int(y[0])}
    assert httpx.post(feedback, json=label).status_code == 401
    assert httpx.post(feedback, headers=mallory, json=label).status_code == 404
    assert httpx.post(feedback, headers=alice, json=label).status_code == 200
