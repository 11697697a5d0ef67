"""Edges of the serving path: text tensors, odd model outputs, limits that must answer JSON."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from frugal.config import parse_config
from frugal.errors import ArtifactError, ConfigError
from frugal.runtimes import load_model, sha256_of
from frugal.serving import build_engine
from tests.conftest import TEST_INSTANCE, digits_config, sqlite_ledger
from tests.waiting import eventually

GOOD = "great fine good lovely superb".split()
BAD = "awful bad poor terrible dreadful".split()


@pytest.fixture(scope="module")
def sentiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tf-idf + logistic regression pipeline trained here on made-up sentences."""
    texts = [f"the service was {w} today" for w in GOOD] + [f"the food was {w}" for w in BAD]
    labels = ["good"] * len(GOOD) + ["bad"] * len(BAD)
    path = tmp_path_factory.mktemp("text") / "sentiment.joblib"
    joblib.dump(make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels), path)
    return path


def test_v2_bytes_tensor_of_strings(serve: Any, sentiment_file: Path, tmp_path: Path) -> None:
    """A BYTES input of shape [-1] (one string a row) works on v2 infer as on simple JSON."""
    config = parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "sentiment", "runtime": "sklearn", "path": str(sentiment_file),
                    "sha256": sha256_of(sentiment_file),
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]}],
        "endpoints": [{"name": "sentiment", "model": "sentiment"}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    })  # fmt: skip
    server = serve(config)
    texts = ["it was great", "it was awful"]
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    r = httpx.post(f"{server.url}/v2/models/sentiment/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ["good", "bad"]
    simple = httpx.post(f"{server.url}/v1/endpoints/sentiment/predict", json={"instances": texts})
    assert simple.json()["predictions"] == ["good", "bad"]
    wrong = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [3]}]}
    refused = httpx.post(f"{server.url}/v2/models/sentiment/infer", json=wrong)
    assert refused.status_code == 400 and refused.json()["field"] == "inputs[0].data"


class Odd:
    """A python model whose answers are numpy values, or, for "set", a value JSON cannot carry."""

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        import numpy as np

        return [{1, 2} if item == "set" else np.float64(len(item)) for item in items]


def make_odd() -> Odd:
    return Odd()


def python_config(tmp_path: Path, factory: str, **batching: Any) -> Any:
    return parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "m", "runtime": "python", "factory": factory,
                    "batching": {"timeout_ms": 20000, **batching}}],
        "endpoints": [{"name": "m", "model": "m"}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 10,
                   "cost_interval_ms": 20},
    })  # fmt: skip


def test_numpy_answers_are_json_and_unencodable_ones_are_500(serve: Any, tmp_path: Path) -> None:
    """numpy values serialize; a value JSON cannot carry is a 500 recorded as such, not a 200."""
    server = serve(python_config(tmp_path, "tests.serving.test_edges:make_odd"))
    ok = httpx.post(f"{server.url}/v1/endpoints/m/predict", json={"instances": ["abc"]})
    assert ok.status_code == 200 and ok.json()["predictions"] == [3.0]
    bad = httpx.post(f"{server.url}/v1/endpoints/m/predict", json={"instances": ["set"]})
    assert bad.status_code == 500
    assert "not JSON" in bad.json()["error"] and bad.json()["request_id"]
    server.__exit__()
    db = sqlite3.connect(tmp_path / "ledger.db")
    assert sorted(s for (s,) in db.execute("SELECT status FROM requests")) == [200, 500]
    db.close()


GATE = threading.Event()
STARTED = threading.Event()


class Gated:
    """Answers each item with its length once GATE opens: the test decides when it is busy."""

    def predict_batch(self, items: Sequence[Any]) -> list[int]:
        STARTED.set()
        GATE.wait(20)
        return [len(item) for item in items]


def make_gated() -> Gated:
    return Gated()


def test_max_concurrency_refuses_with_json_503(serve: Any, tmp_path: Path) -> None:
    """Past server.max_concurrency open requests, one more gets 503 JSON with Retry-After."""
    config = python_config(tmp_path, "tests.serving.test_edges:make_gated")
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"max_concurrency": 2})}
    )
    server = serve(config)
    GATE.clear()
    STARTED.clear()
    url = f"{server.url}/v1/endpoints/m/predict"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, url, json={"instances": ["a"]}, timeout=30)
        assert STARTED.wait(10)
        second = pool.submit(httpx.post, url, json={"instances": ["bb"]}, timeout=30)

        # The second request reaches the queue behind the busy model; uvicorn offers no event
        # for "request read", so watch the queue, bounded.
        def queued() -> bool:
            assert not second.done(), "the second request was answered while the model was busy"
            return bool(server.engine.batchers["m:1"].queue_depth >= 1)

        eventually(queued, "the second request to reach the queue")
        refused = httpx.post(url, json={"instances": ["ccc"]})
        GATE.set()
        assert [first.result().status_code, second.result().status_code] == [200, 200]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "max_concurrency" in refused.json()["error"]


def test_request_larger_than_the_queue_is_400(serve: Any, tmp_path: Path) -> None:
    """A request with more items than max_queue can never fit: 400 naming the field."""
    server = serve(python_config(tmp_path, "tests.serving.test_edges:make_odd", max_queue=3))
    r = httpx.post(f"{server.url}/v1/endpoints/m/predict", json={"instances": ["a"] * 4})
    assert r.status_code == 400 and r.json()["field"] == "instances"
    assert "max_queue" in r.json()["hint"]


def test_each_worker_process_bills_its_share(digits_model_file: Path, tmp_path: Path) -> None:
    """With --workers N each process is priced at 1/N of the machine with 1/N of its slots."""
    config = parse_config(digits_config(digits_model_file, tmp_path))
    engine = build_engine(config, processes=2)
    try:
        assert engine.pricer.price_usd_per_hour == pytest.approx(0.18)
        assert engine.pricer.slots == 1
    finally:
        engine.slot_pool.shutdown()
        sqlite_ledger(engine).close()


def test_runtimes_refuse_what_they_would_ignore(digits_model_file: Path, tmp_path: Path) -> None:
    """sklearn refuses options, and factory is refused for runtimes other than python."""
    base = digits_config(digits_model_file, tmp_path)
    base["models"][0]["options"] = {"threads": 2}
    with pytest.raises(ArtifactError, match="takes no options"):
        load_model(parse_config(base).models[0])
    base["models"][0].pop("options")
    base["models"][0]["factory"] = "x:y"
    with pytest.raises(ConfigError, match="factory") as error:
        parse_config(base)
    assert error.value.field == "models[0]"
