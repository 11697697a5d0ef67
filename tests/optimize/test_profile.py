"""frugal profile: the measuring loop, the knee and SLO rules, the JSON contract and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.config import ModelConfig
from frugal.errors import InvalidInput
from frugal.optimize import Profile, ProfilePoint, profile_model, suggest_batching
from frugal.optimize.profile import hardware_class, knee_batch_size, max_batch_within_slo
from frugal.runtimes import load_model, sha256_of
from tests.optimize.conftest import Digits, write_csv

FAST = ("--warmup", "1", "--min-repeats", "3", "--min-seconds", "0")
POINT_KEYS = {"batch_size", "repeats", "p50_ms", "p99_ms", "mean_ms", "items_per_s",
              "peak_rss_mb", "peak_gpu_mb"}  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def point(batch: int, items_per_s: float, p99_ms: float) -> ProfilePoint:
    return ProfilePoint(batch, 10, p99_ms / 2, p99_ms, p99_ms / 2, items_per_s, 100.0)


# Throughput that flattens after 16; p99 that grows with the batch.
POINTS = [point(1, 1000, 1.0), point(4, 3000, 1.5), point(16, 9000, 3.0), point(32, 9500, 6.0),
          point(64, 9800, 12.0)]  # fmt: skip


def test_knee_is_the_smallest_batch_within_90_percent_of_peak() -> None:
    """9000 >= 0.9 * 9800, 3000 is not: the knee is 16."""
    assert knee_batch_size(POINTS) == 16


def test_slo_batch_is_the_largest_whose_p99_fits() -> None:
    """p99 6.0 fits an 8 ms SLO and 12.0 does not; no SLO or none fitting gives None."""
    assert max_batch_within_slo(POINTS, 8.0) == 32
    assert max_batch_within_slo(POINTS, 0.5) is None
    assert max_batch_within_slo(POINTS, None) is None


def test_suggestion_is_the_knee_capped_by_the_slo() -> None:
    """No SLO: the knee and 2 ms; a tight SLO caps the batch and the wait shares its headroom."""
    assert suggest_batching(POINTS, None) == {"max_batch_size": 16, "max_wait_ms": 2.0}
    # knee 16 fits a 100 ms SLO: wait = min(half of 100 - 3, p99 3) = 3
    assert suggest_batching(POINTS, 100.0) == {"max_batch_size": 16, "max_wait_ms": 3.0}
    # SLO 2 ms: batch 4 (p99 1.5) is the largest that fits; wait = half of 0.5
    assert suggest_batching(POINTS, 2.0) == {"max_batch_size": 4, "max_wait_ms": 0.25}
    # nothing fits: batch 1 and the smallest wait
    assert suggest_batching(POINTS, 0.5) == {"max_batch_size": 1, "max_wait_ms": 0.1}


@pytest.mark.parametrize(
    ("name", "expected"),
    [(None, "cpu"), ("NVIDIA H100 80GB HBM3", "gpu:H100"), ("NVIDIA A10G", "gpu:A10G"),
     ("NVIDIA A10", "gpu:A10"), ("Tesla T4", "gpu:T4"), ("NVIDIA L4", "gpu:L4"),
     ("NVIDIA A100-SXM4-40GB", "gpu:A100"), ("NVIDIA L40S", "gpu:L40S")],
)  # fmt: skip
def test_hardware_class_short_names(name: str | None, expected: str) -> None:
    """GPU names map to the short names of the instance catalog."""
    assert hardware_class(name) == expected


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_profile_model_measures_each_batch(
    runtime: Literal["sklearn", "onnx"], models_dir: Path, digits01: Digits
) -> None:
    """Every batch size gets a point; batching raises items/s over batch 1 (loosely)."""
    path = models_dir / ("digits-lr.joblib" if runtime == "sklearn" else "digits-lr.onnx")
    config = ModelConfig(name="digits", runtime=runtime, path=path, sha256=sha256_of(path))
    model = load_model(config)
    items = list(digits01[0][:64])
    profile = profile_model(model, items, [1, 8, 32], warmup=1, min_repeats=5, min_seconds=0.05,
                            progress=False)  # fmt: skip
    assert [p.batch_size for p in profile.points] == [1, 8, 32]
    assert all(p.repeats >= 5 and p.p99_ms >= p.p50_ms > 0 for p in profile.points)
    knee = profile.point(profile.knee_batch_size)
    assert knee is not None and knee.items_per_s >= profile.points[0].items_per_s
    assert profile.hardware["hardware_class"] == "cpu" and profile.hardware["cpu_cores"] >= 1


def test_cli_writes_the_profile_json(models_dir: Path, tmp_path: Path) -> None:
    """A bare ONNX file is profiled on made-up items; the JSON has the contract's keys."""
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    result = invoke("profile", str(models_dir / "digits-mlp.onnx"), "--batch-sizes", "1,4,16",
                    "--slo-ms", "1000", "--device", "cpu", "--out", str(out), "--plot", str(png),
                    *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "knee (*)" in result.output and "max_batch_size:" in result.output
    data = json.loads(out.read_text())
    assert data["format"] == "frugal-profile/1"
    assert set(data) >= {"created_at", "model", "hardware", "threads", "points", "slo_ms",
                         "knee_batch_size", "max_batch_within_slo", "suggested"}  # fmt: skip
    assert data["model"]["runtime"] == "onnx"
    assert data["model"]["sha256"] == sha256_of(models_dir / "digits-mlp.onnx")
    assert data["model"]["size_bytes"] == (models_dir / "digits-mlp.onnx").stat().st_size
    assert set(data["hardware"]) >= {"device", "cpu_model", "cpu_cores", "gpu_name",
                                     "gpu_memory_mb", "hardware_class"}  # fmt: skip
    assert data["threads"] == 1 and data["slo_ms"] == 1000.0
    assert [p["batch_size"] for p in data["points"]] == [1, 4, 16]
    assert all(set(p) == POINT_KEYS for p in data["points"])
    assert data["max_batch_within_slo"] == 16
    assert set(data["suggested"]) == {"max_batch_size", "max_wait_ms"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = Profile.from_json(out)
    assert loaded.to_dict()["points"] == data["points"] and loaded.threads == 1


def test_cli_profiles_a_config_model_with_data(
    models_dir: Path, tmp_path: Path, digits01: Digits
) -> None:
    """A frugal.yaml's model is loaded as the server loads it and fed the --data items."""
    x, y = digits01
    model = models_dir / "digits-lr.joblib"
    config: dict[str, Any] = {
        "instance": {"price_usd_per_hour": 0.1},
        "models": [{"name": "digits", "version": "3", "runtime": "sklearn", "path": str(model),
                    "sha256": sha256_of(model),
                    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]}],
    }  # fmt: skip
    path = tmp_path / "frugal.yaml"
    path.write_text(yaml.safe_dump(config))
    data = write_csv(tmp_path / "d.csv", x[:50], y[:50])
    out = tmp_path / "p.json"
    result = invoke("profile", str(path), "--model", "digits", "--data", str(data),
                    "--batch-sizes", "1,8", "--out", str(out), *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())["model"]
    assert (record["name"], record["version"], record["runtime"]) == ("digits", "3", "sklearn")


class Echo:
    """A text model (python runtime) that answers each sentence's length."""

    def predict_batch(self, items: list[str]) -> list[int]:
        return [len(s) for s in items]


def make_echo() -> Echo:
    return Echo()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["absent.onnx"], "absent.onnx: file not found"),
        (["model.bin"], "cannot tell the runtime from the suffix .bin"),
        (["model.onnx", "--data", "d.csv"], "1 feature column(s), but input 'X' takes 64"),
        (["model.onnx", "--model", "x"], "--model picks a model of a frugal.yaml"),
        (["text.yaml"], "cannot make up items for input 'text'"),
        (["text.yaml", "--model", "nope"], "no model 'nope'"),
    ],
)
def test_bad_inputs_exit_2(
    args: list[str], message: str, models_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Missing file, unknown suffix, mismatched data, text without data: exit 2 and a message."""
    monkeypatch.chdir(tmp_path)
    Path("model.bin").write_bytes(b"x")
    Path("model.onnx").write_bytes((models_dir / "digits-mlp.onnx").read_bytes())
    Path("d.csv").write_text("a,label\n1,0\n")
    Path("text.yaml").write_text(yaml.safe_dump({
        "instance": {"price_usd_per_hour": 0.1},
        "models": [{"name": "echo", "runtime": "python",
                    "factory": "tests.optimize.test_profile:make_echo",
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]}],
    }))  # fmt: skip
    result = invoke("profile", *args, *FAST)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not Path("profile.json").exists()


def test_from_json_refuses_another_format(tmp_path: Path) -> None:
    """A file whose format is not frugal-profile/1 is refused naming the file."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": "something/2"}))
    with pytest.raises(InvalidInput, match=f"{path}: not a frugal profile"):
        Profile.from_json(path)


def test_text_model_profiles_with_data(tmp_path: Path, monkeypatch: Any) -> None:
    """A text model profiles from a jsonl of sentences."""
    monkeypatch.chdir(tmp_path)
    Path("text.yaml").write_text(yaml.safe_dump({
        "instance": {"price_usd_per_hour": 0.1},
        "models": [{"name": "echo", "runtime": "python",
                    "factory": "tests.optimize.test_profile:make_echo",
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]}],
    }))  # fmt: skip
    Path("s.jsonl").write_text("".join(json.dumps({"input": f"s {i}"}) + "\n" for i in range(9)))
    result = invoke("profile", "text.yaml", "--data", "s.jsonl", "--batch-sizes", "1,2", *FAST)
    assert result.exit_code == 0, result.output
    points = json.loads(Path("profile.json").read_text())["points"]
    assert np.all([p["items_per_s"] > 0 for p in points])
