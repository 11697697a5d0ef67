"""frugal prune: unstructured and structured magnitude pruning of a TorchScript digits MLP, the
sparsity counted from the saved weights, the shrunk MLP, the --max-drop verdict, bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner, Result
from sklearn.linear_model import LogisticRegression

from frugal.cli import main
from frugal.runtimes import sha256_of
from tests.optimize.conftest import Digits, write_csv

pytest.importorskip("torch")
import torch

FAST = ("--min-repeats", "3", "--min-seconds", "0", "--batch-size", "8", "--device", "cpu")
# The torch runtime passes on torch.jit.load's deprecation warning on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def listing(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


def load(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path))  # type: ignore[no-untyped-call]


class TwoLayer(torch.nn.Module):
    """Not a Sequential: structured pruning zeros its rows but cannot rebuild it smaller."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(64, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(torch.relu(self.hidden(x)))
        return out


def train(model: Any, digits: Digits, path: Path) -> Path:
    x, y = digits
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[:1200]), torch.from_numpy(y[:1200])
    for _ in range(5):
        for i in torch.randperm(len(xt)).split(64):  # type: ignore[no-untyped-call]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[i]), yt[i])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(model.eval()).save(str(path))
    return path


@pytest.fixture(scope="module")
def torch_mlp(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    """A Sequential MLP 64-128-10 trained on the first 1200 digits, saved as TorchScript."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    return train(model, digits01, tmp_path_factory.mktemp("prune") / "mlp.pt")


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    x, y = digits01
    path = tmp_path_factory.mktemp("validation") / "val.npz"
    np.savez(path, X=x[1200:], y=y[1200:])
    return path


def zeros_share(path: Path, layers: list[str]) -> float:
    """Zeros counted here, independently, in the saved file's weights of ``layers``."""
    modules = dict(load(path).named_modules())
    weights = [modules[name].weight.detach() for name in layers]
    return sum(int((w == 0).sum()) for w in weights) / sum(int(w.numel()) for w in weights)


def test_unstructured_sparsity_matches_the_saved_zeros(
    torch_mlp: Path, validation: Path, tmp_path: Path
) -> None:
    """0.3/0.5/0.7: the reported sparsity is the zeros in the saved file (within 1%), near what
    was asked; accuracy is reported, falls as sparsity grows, and gzip shrinks."""
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    result = invoke("prune", str(torch_mlp), "--sparsity", "0.3,0.5,0.7", "--data", str(validation),
                    "--out-dir", str(out), "--report", str(report), *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["format"] == "frugal-prune/1" and data["method"] == "l1_unstructured"
    assert data["layers"] == ["0", "2"] and data["baseline"]["quality"]["metric"] == "accuracy"
    levels = data["levels"]
    assert [lv["name"] for lv in levels] == [
        "unstructured-30",
        "unstructured-50",
        "unstructured-70",
    ]
    original = load(torch_mlp).state_dict()
    for level in levels:
        path = Path(level["path"])
        assert path.parent == out and sha256_of(path) == level["sha256"]
        assert abs(level["sparsity"] - zeros_share(path, ["0", "2"])) <= 0.01
        assert abs(level["sparsity"] - level["amount"]) <= 0.01
        assert level["quality"]["metric"] == "accuracy" and 0 < level["quality"]["value"] <= 1
        pruned = load(path).state_dict()
        assert not torch.equal(pruned["0.weight"], original["0.weight"])
        assert torch.equal(pruned["0.bias"], original["0.bias"])  # only weights are pruned
    accuracies = [lv["quality"]["value"] for lv in levels]
    assert accuracies[-1] <= accuracies[0]
    gzips = [data["baseline"]["gzip_bytes"]] + [lv["gzip_bytes"] for lv in levels]
    assert gzips == sorted(gzips, reverse=True)
    assert "acc" in result.output and "unstructured-70" in result.output


def test_structured_zeros_rows_and_shrinks_the_sequential(
    torch_mlp: Path, validation: Path, tmp_path: Path
) -> None:
    """--structured zeros whole rows of the hidden layer (not the output layer); the shrunk MLP
    has fewer rows and answers exactly as the zeroed one (act(bias) folded forward)."""
    report = tmp_path / "r.json"
    result = invoke("prune", str(torch_mlp), "--sparsity", "0.5", "--structured", "--data",
                    str(validation), "--out-dir", str(tmp_path), "--report", str(report),
                    *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["layers"] == ["0"]
    dense, shrunk = data["levels"]
    assert (dense["name"], shrunk["name"]) == ("structured-50", "structured-50-shrunk")
    weight = load(Path(dense["path"])).state_dict()["0.weight"]
    zero_rows = int((weight.abs().sum(dim=1) == 0).sum())
    assert (
        zero_rows == 64 and abs(dense["sparsity"] - zeros_share(Path(dense["path"]), ["0"])) < 0.01
    )
    small = load(Path(shrunk["path"])).state_dict()
    assert tuple(small["0.weight"].shape) == (64, 64) and tuple(small["2.weight"].shape) == (10, 64)
    assert shrunk["shrunk"] is True and abs(shrunk["sparsity"] - 0.5) <= 0.01
    assert shrunk["size_bytes"] < dense["size_bytes"]
    assert shrunk["quality"]["value"] == pytest.approx(dense["quality"]["value"], abs=1 / 597)


def test_structured_on_a_custom_module_says_it_was_not_shrunk(
    digits01: Digits, validation: Path, tmp_path: Path
) -> None:
    path = train(TwoLayer(), digits01, tmp_path / "two.pt")
    out = tmp_path / "out"
    result = invoke("prune", str(path), "--sparsity", "0.25", "--structured", "--data",
                    str(validation), "--out-dir", str(out), *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "not shrunk" in result.output
    assert listing(out) == [str(out / "two.structured-25.pt")]
    assert abs(zeros_share(out / "two.structured-25.pt", ["hidden"]) - 0.25) <= 0.01


def test_too_strict_max_drop_exits_1_and_writes_nothing(
    torch_mlp: Path, validation: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    before = listing(tmp_path, torch_mlp.parent)
    result = invoke("prune", str(torch_mlp), "--sparsity", "0.9", "--data", str(validation),
                    "--max-drop", "0.001", "--report", str(report), *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "over --max-drop" in result.output and "nothing written" in result.output
    assert listing(tmp_path, torch_mlp.parent) == before


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("absent.pt", [], "file not found"),
        ("lr.joblib", [], "works on PyTorch (TorchScript) models, not runtime sklearn"),
        ("mlp.pt", ["--sparsity", "1.5"], "--sparsity 1.5: each level is a share"),
        ("mlp.pt", ["--sparsity", "0"], "--sparsity 0: each level is a share"),
        ("mlp.pt", ["--sparsity", "half"], "not a comma list of numbers"),
        ("mlp.pt", ["--data", "bad.csv"], "1 feature column(s), but input"),
        ("two.pt", ["--data", "bad.csv"], "the model fails on the --data items"),
    ],
)
def test_bad_inputs_exit_2_and_write_nothing(
    model: str,
    args: list[str],
    message: str,
    torch_mlp: Path,
    digits01: Digits,
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_csv(Path("bad.csv"), digits01[0][:3, :1], digits01[1][:3])
    x, y = digits01
    joblib.dump(LogisticRegression(max_iter=1000).fit(x[:300], y[:300]), "lr.joblib")
    Path("mlp.pt").write_bytes(torch_mlp.read_bytes())
    torch.jit.script(TwoLayer().eval()).save("two.pt")  # type: ignore[no-untyped-call]
    before = listing(tmp_path)
    result = invoke("prune", model, *args, *FAST)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output
    assert message in result.output
    assert listing(tmp_path) == before
