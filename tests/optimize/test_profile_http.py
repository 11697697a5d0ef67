"""`frugal profile --http`: a real `frugal serve` subprocess on a tiny model, driven over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.optimize import Profile
from frugal.optimize.profiles import read_profile
from frugal.runtimes import sha256_of
from tests.optimize.profiles import CPU, write

FAST = ("--batch-sizes", "1,4", "--warmup", "1", "--min-repeats", "3", "--min-seconds", "0")
SHORT = ("--http", "--concurrency", "1,2", "--seconds", "0.3")
LEVEL_KEYS = {"concurrency", "seconds", "requests", "errors", "req_per_s", "p50_ms", "p99_ms",
              "mean_ms", "server_cpu_s_per_request", "server_cores_busy",
              "client_cpu_s_per_request"}  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_http_profile_of_a_model_file(models_dir: Path, tmp_path: Path) -> None:
    """A bare joblib file is served, driven at 1 and 2 connections, and both levels recorded
    next to the model-only points, in the table, the JSON and the PNG."""
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    result = invoke("profile", str(models_dir / "digits-lr.joblib"), *FAST, *SHORT,
                    "--device", "cpu", "--out", str(out), "--plot", str(png))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "end to end: frugal serve (1 worker(s)" in result.output
    assert "server CPU ms/req" in result.output and "model load:" in result.output
    data = json.loads(out.read_text())
    assert [p["batch_size"] for p in data["points"]] == [1, 4]  # the model-only curve stays
    assert data["model_load_s"] > 0
    http = data["http"]
    assert http["path"] == "/v1/endpoints/digits-lr/predict" and http["server_workers"] == 1
    assert [lv["concurrency"] for lv in http["levels"]] == [1, 2]
    for level in http["levels"]:
        assert set(level) == LEVEL_KEYS
        assert level["requests"] > 0 and level["errors"] == 0
        assert level["server_cpu_s_per_request"] > 0 and level["p50_ms"] <= level["p99_ms"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = read_profile(out)  # what plan and check read
    assert record.http is not None and record.http.levels[0].requests > 0
    assert record.model_load_s == data["model_load_s"]


def test_http_profile_of_a_config_keeps_its_batching_not_its_ledger(
    models_dir: Path, tmp_path: Path
) -> None:
    """A frugal.yaml's model is served with its batching; the run's requests never reach the
    config's ledger file."""
    model = models_dir / "digits-lr.joblib"
    ledger = tmp_path / "real-ledger.db"
    config: dict[str, Any] = {
        "instance": {"price_usd_per_hour": 0.1, "slots": 2},
        "models": [{"name": "digits", "runtime": "sklearn", "path": str(model),
                    "sha256": sha256_of(model),
                    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
                    "batching": {"max_batch_size": 8, "max_wait_ms": 1}}],
        "endpoints": [{"name": "digits", "model": "digits",
                       "cache": {"store": "memory", "ttl_s": 60}}],
        "ledger": {"path": str(ledger)},
    }  # fmt: skip
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "p.json"
    result = invoke("profile", str(path), *FAST, "--http", "--concurrency", "2", "--seconds",
                    "0.3", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    http = Profile.from_json(out).http
    assert http is not None and (http.max_batch_size, http.max_wait_ms) == (8, 1.0)
    assert http.path == "/v1/endpoints/digits/predict"
    assert not ledger.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "concurrency levels are whole numbers >= 1"),
        (["--concurrency", "a,b"], "a comma list of whole numbers"),
        (["--seconds", "0"], "0.1"),
    ],
)
def test_http_options_are_checked(
    args: list[str], message: str, models_dir: Path, tmp_path: Path
) -> None:
    """Bad --concurrency or --seconds exit 2 before anything is loaded or started."""
    out = tmp_path / "p.json"
    result = invoke("profile", str(models_dir / "digits-lr.joblib"), "--http", *args,
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()


def test_profiles_without_the_new_sections_still_load(tmp_path: Path) -> None:
    """A profile written before model_load_s and http existed loads, with neither."""
    path = write(tmp_path / "old.json", CPU)
    assert "http" not in CPU and "model_load_s" not in CPU
    record = read_profile(path)
    assert record.http is None and record.model_load_s is None
    assert [p.batch_size for p in record.points] == [1, 8, 32]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_batch_size": 8, "levels": [{"concurrency": 1}]}, "missing key 'seconds'"),
        ({"path": "/x", "max_batch_size": 8, "levels": []}, "`http.levels` is empty"),
        ({"path": "/x", "max_batch_size": 8,
          "levels": [{"concurrency": 1, "seconds": 1, "requests": 5, "errors": 0,
                      "req_per_s": 5, "p50_ms": 1, "p99_ms": -2, "mean_ms": 1,
                      "server_cpu_s_per_request": 0.001, "server_cores_busy": 0.1,
                      "client_cpu_s_per_request": 0.0001}]},
         "http.levels[0].p99_ms must be finite and >= 0"),
    ],
)  # fmt: skip
def test_a_bad_http_section_exits_2(section: dict[str, Any], message: str, tmp_path: Path) -> None:
    """A malformed end-to-end section is refused naming the file and the field."""
    path = write(tmp_path / "bad.json", {**CPU, "http": section})
    result = invoke("plan", "--profile", str(path), "--qps", "10", "--slo-ms", "50")
    assert result.exit_code == 2, result.output
    assert "malformed profile" in result.output and message in result.output
