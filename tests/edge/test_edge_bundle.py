"""Edge bundles: `frugal export --edge` on a real digits model, the bundle run in a fresh venv
that has only numpy and onnxruntime, and the hybrid edge -> server cascade against a live
`frugal serve` (the small model on the edge, the server's large one for the rest)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from frugal.config import parse_config
from frugal.edge import BundleError, EdgeCascade, EdgeModel, ServerError
from frugal.optimize import free_port
from tests.conftest import (
    DIGITS_INPUTS,
    TEST_INSTANCE,
    assert_charged,
    digits_config,
    write_config,
)
from tests.edge.conftest import run_in_venv
from tests.optimize.cascades import invoke
from tests.waiting import eventually

HELD_OUT = slice(1200, None)  # the digits no model here trained on


@pytest.fixture(scope="module")
def small(digits: Any) -> Pipeline:
    """A small MLP (MatMuls, so int8 has weights to quantize), trained on 600 digits."""
    x, y = digits
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=2000, random_state=0)
    model = make_pipeline(StandardScaler(), mlp)
    return model.fit(x[:600], y[:600])


def edge_config(tmp_path: Path, small_file: Path) -> Path:
    sha = hashlib.sha256(small_file.read_bytes()).hexdigest()
    data = {"instance": TEST_INSTANCE, "models": [{
        "name": "small", "runtime": "sklearn", "path": str(small_file), "sha256": sha,
        "inputs": DIGITS_INPUTS}], "endpoints": [{"name": "small", "model": "small"}],
        "ledger": {"path": str(tmp_path / "edge-ledger.db")}}  # fmt: skip
    return write_config(tmp_path, data, "edge.yaml")


def small_file(tmp_path: Path, model: Pipeline) -> Path:
    path = tmp_path / "mlp.joblib"
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, small: Pipeline) -> Path:
    """The MLP exported through frugal.yaml's model entry, int8-quantized."""
    folder = tmp_path_factory.mktemp("bundle")
    model_file = small_file(folder, small)
    config = edge_config(folder, model_file)
    out = folder / "bundle"
    result = invoke("export", "small", "--edge", "-o", out, "--config", config,
                    "--threshold", "0.95", "--endpoint", "digits")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "int8-dynamic" in result.output
    return out


def test_the_bundle_holds_a_quantized_model_its_manifest_and_the_runner(
    bundle: Path, small: Pipeline, digits: Any
) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["quantized"] == "int8-dynamic" and manifest["gate"] == {"confidence": 0.95}
    assert manifest["sha256"] == hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    assert manifest["inputs"][0]["name"] == "pixels"
    runner = (bundle / "frugal_edge.py").read_text()
    assert runner == (Path(__file__).parents[2] / "frugal/edge/runner.py").read_text()
    x, _ = digits
    labels, confidences = EdgeModel(bundle).predict(x[HELD_OUT])
    agreement = np.mean(np.asarray(labels) == small.predict(x[HELD_OUT]))
    assert agreement >= 0.97  # int8 weights: a few borderline items may flip
    assert all(0.0 <= c <= 1.0 for c in confidences)


def test_an_altered_model_is_refused(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "model.onnx"):
        (copy / name).write_bytes((bundle / name).read_bytes())
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="sha256 differs"):
        EdgeModel(copy)


def test_the_bundle_runs_in_a_fresh_venv_with_only_numpy_and_onnxruntime(
    bundle: Path, tmp_path: Path, edge_venv: Path, digits: Any
) -> None:
    """No frugal, no scikit-learn: the same answers as in this process."""
    x, _ = digits
    rows = x[HELD_OUT][:50].tolist()
    labels, confidences = run_in_venv(edge_venv, bundle, rows, tmp_path)
    here = EdgeModel(bundle).predict(rows)
    assert labels == here[0]
    assert confidences == pytest.approx(here[1], abs=1e-6)


def test_the_hybrid_cascade_sends_what_the_edge_is_unsure_of_to_the_server(
    serve: Any, bundle: Path, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """Counts and dollars in the edge's record equal what the server's ledger holds."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    x, y = digits
    record = tmp_path / "record.jsonl"
    cascade = EdgeCascade(bundle, server.url, "digits", record=record, usd_per_hour=0.05)
    answers = []
    for start in range(1200, 1500, 50):
        answers += cascade.predict(x[start : start + 50])
    where = [a.where for a in answers]
    assert where.count("edge") > 0 and where.count("server") > 0
    accuracy = np.mean([a.value == t for a, t in zip(answers, y[1200:1500], strict=True)])
    assert accuracy > 0.9
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert sum(e["server"] for e in entries) == where.count("server")
    assert sum(e["edge"] for e in entries) == where.count("edge")

    def ledger() -> list[sqlite3.Row]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT request_id, items, model_usd FROM requests").fetchall()
        return found if len(found) == sum(1 for e in entries if e["server"]) else []

    rows = eventually(ledger, "one ledger row per request the edge sent")
    by_id = {r["request_id"]: r for r in rows}
    for entry in (e for e in entries if e["server"]):
        row = by_id[entry["request_id"]]
        assert row["items"] == entry["server"]
        assert row["model_usd"] > 0
        assert_charged(str(entry["server_usd"]), row["model_usd"])  # the header's dollars
    assert all(e["edge_usd"] > 0 for e in entries)


def test_a_server_that_is_down_is_an_error_naming_it_or_a_local_answer(
    bundle: Path, tmp_path: Path, digits: Any
) -> None:
    x, _ = digits
    url = f"http://127.0.0.1:{free_port()}"
    strict = EdgeCascade(bundle, url, "digits", threshold=1.01, record=tmp_path / "r.jsonl")
    with pytest.raises(ServerError, match=f"{url}/v1/endpoints/digits/predict"):
        strict.predict(x[1200:1205])
    lenient = EdgeCascade(bundle, url, "digits", threshold=1.01, record=tmp_path / "r.jsonl",
                          answer_locally_when_down=True)  # fmt: skip
    answers = lenient.predict(x[1200:1205])
    assert [a.where for a in answers] == ["edge-fallback"] * 5
    entries = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [e["fallback"] for e in entries] == [0, 5] and "server_error" in entries[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope", "--edge"], "no model 'nope'"),
        (["small", "--edge", "--threshold", "1.5"], "--threshold"),
        (["small", "--edge", "--quantize", "int4"], "'int4' is not one of"),
    ],
)
def test_bad_exports_exit_2_naming_what_is_wrong(
    args: list[str], says: str, small: Pipeline, tmp_path: Path
) -> None:
    config = edge_config(tmp_path, small_file(tmp_path, small))
    result = invoke("export", *args, "-o", tmp_path / "out", "--config", config)
    assert result.exit_code == 2 and says in result.output


def test_a_folder_with_files_is_not_overwritten_without_force(
    small: Pipeline, tmp_path: Path
) -> None:
    config = edge_config(tmp_path, small_file(tmp_path, small))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke("export", "small", "--edge", "-o", out, "--config", config)
    assert result.exit_code == 2 and "not an empty folder" in result.output
    result = invoke("export", "small", "--edge", "-o", out, "--config", config, "--force")
    assert result.exit_code == 0 and (out / "keep.txt").read_text() == "mine"
