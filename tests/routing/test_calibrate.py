"""frugal calibrate: real digits and breast-cancer cascades trained here, the thresholds it
chooses checked on held-out items, --write's one-value edit, the verdict and bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from frugal.cli import main
from frugal.config import load_config
from frugal.routing.gates import OPERATORS
from frugal.routing.sweep import candidates
from frugal.runtimes import sha256_of

# Held-out noise: the chosen thresholds are picked on ~450 calibration items and judged on
# ~450 others; the two cascades differ from large-only on a few dozen items, so a held-out
# drop can exceed --max-drop by a couple of items (0.005 = 2.2 items of 449) by chance alone.
HELD_OUT_TOLERANCE = 0.005
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_config(folder: Path, accept: str, *, features: int, name: str = "frugal.yaml") -> Path:
    """A frugal.yaml with a 2-tier cascade (and a plain endpoint), comments included."""
    path = folder / name
    small, large = folder / "small.joblib", folder / "large.joblib"
    path.write_text(
        f"""# a cascade: the cheap model answers when it is sure
instance:
  price_usd_per_hour: 0.0928  # c7i.large on demand
models:
  - name: small
    runtime: sklearn
    path: {small.name}
    sha256: {sha256_of(small)}
    inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}]
    batching: {{max_batch_size: 64}}
  - name: large
    runtime: sklearn
    path: {large.name}
    sha256: {sha256_of(large)}
    inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}]
    batching: {{max_batch_size: 64}}
endpoints:
  - name: plain
    model: large
  - name: cascade
    route:
      cascade:
        - model: small
          accept: {{{accept}}}   # calibrate me
        - {{model: large}}
"""
    )
    return path


def train(folder: Path, x: np.ndarray, y: np.ndarray, small: Any, large: Any, train_n: int) -> Path:
    """Fit both tiers on the first ``train_n`` rows; the rest become the labeled data.npz."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # an under-trained small tier
        joblib.dump(small.fit(x[:train_n], y[:train_n]), folder / "small.joblib")
    joblib.dump(large.fit(x[:train_n], y[:train_n]), folder / "large.joblib")
    np.savez(folder / "data.npz", X=x[train_n:], y=y[train_n:])
    return folder / "data.npz"


def train_digits_cascade(folder: Path) -> Path:
    """An under-trained logistic regression (~91%) before a 5-NN (~98-99%) on shuffled digits."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order]
    train(folder, x, y, LogisticRegression(max_iter=5), KNeighborsClassifier(5), 900)
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_digits_cascade(tmp_path_factory.mktemp("digits"))


def check_chosen(report: dict[str, Any], max_drop: float) -> None:
    """The chosen thresholds keep held-out accuracy within the drop and cost less than large."""
    large = report["tiers"][-1]["alone"]["holdout"]
    chosen = report["chosen"]["holdout"]
    assert chosen["accuracy"] >= large["accuracy"] - max_drop - HELD_OUT_TOLERANCE
    assert chosen["usd_per_1k"] < large["usd_per_1k"]
    calibration = report["chosen"]["calibration"]
    assert calibration["accuracy"] >= report["target"]["accuracy_needed"]


def test_confidence_gate_meets_the_drop_at_a_lower_cost(digits: Path, tmp_path: Path) -> None:
    """A confidence gate gets thresholds within --max-drop of large-only, held out, for less $."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64)
    out, plot = tmp_path / "calibration.json", tmp_path / "plot.png"
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", digits / "data.npz",
                    "--max-drop", "0.01", "--out", out, "--plot", plot)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["format"] == "frugal-calibrate/1" and report["passed"] is True
    assert report["calibration_items"] + report["holdout_items"] == report["items"] == 897
    check_chosen(report, 0.01)
    assert 0 < report["chosen"]["calibration"]["escalation_rate"] < 1
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert 'accept: {confidence: ">= ' in result.output  # the snippet to paste
    assert "large-only" in result.output and "small-only" in result.output


def test_default_plot_lands_beside_the_config(digits: Path, tmp_path: Path) -> None:
    """Without --plot the PNG is calibration-<endpoint>.png next to the config."""
    for name in ("small.joblib", "large.joblib"):
        (tmp_path / name).write_bytes((digits / name).read_bytes())
    config = write_config(tmp_path, 'margin: ">= 0.5"', features=64)
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", digits / "data.npz",
                    "--max-drop", "0.01", "--out", tmp_path / "c.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "calibration-cascade.png").read_bytes()[:8] == PNG_MAGIC
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["tiers"][0]["signal"] == "margin"
    check_chosen(report, 0.01)


def test_write_changes_only_the_threshold(digits: Path, tmp_path: Path) -> None:
    """--write edits the gate's value in place; every other byte stays, and the config loads."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64, name="write.yaml")
    before = config.read_text()
    out = tmp_path / "c.json"
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", digits / "data.npz",
                    "--max-drop", "0.01", "--write", "--out", out,
                    "--plot", tmp_path / "p.png")  # fmt: skip
    assert result.exit_code == 0, result.output
    (threshold,) = json.loads(out.read_text())["chosen"]["calibration"]["thresholds"]
    assert threshold != 0.92
    assert config.read_text() == before.replace('">= 0.92"', f'">= {threshold!r}"')
    loaded = load_config(config)
    gate = loaded.endpoints[1].route.cascade[0].accept  # type: ignore[union-attr]
    assert gate is not None and gate.comparison == (">=", threshold)


def test_breast_cancer_margin_gate(tmp_path: Path) -> None:
    """A margin gate on breast cancer: a scaled logistic regression before a random forest."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    small = make_pipeline(StandardScaler(), LogisticRegression(C=0.05))
    large = RandomForestClassifier(n_estimators=100, random_state=0)
    data = train(tmp_path, x, y, small, large, 250)
    config = write_config(tmp_path, 'margin: ">= 0.5"', features=30)
    out = tmp_path / "c.json"
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", data,
                    "--max-drop", "0.01", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    check_chosen(json.loads(out.read_text()), 0.01)


@pytest.mark.parametrize("target", ["1.01", "0.9999"])
def test_unreachable_target_is_a_verdict(digits: Path, tmp_path: Path, target: str) -> None:
    """No thresholds reach the accuracy asked for: exit 1, naming the best reachable."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64)
    out = tmp_path / "c.json"
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", digits / "data.npz",
                    "--target-accuracy", target, "--out", out,
                    "--plot", tmp_path / "p.png")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "best accuracy reachable" in result.output
    report = json.loads(out.read_text())
    assert report["passed"] is False and report["best_accuracy"] < float(target)


def bad_scorer(folder: Path) -> Path:
    return write_config(folder, 'scorer: "no_such_module:score", threshold: ">= 0.5"',
                        features=64, name="scorer.yaml")  # fmt: skip


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing config", "file not found"),
        ("missing data", "file not found"),
        ("unknown endpoint", "no endpoint 'nope'"),
        ("not a cascade", "not a cascade"),
        ("no labels", "has no labels"),
        ("wrong columns", "feature column"),
        ("scorer import", "cannot import scorer"),
    ],
)
def test_bad_inputs_exit_2(digits: Path, tmp_path: Path, case: str, message: str) -> None:
    """Each bad input gets `error:` and `hint:` and exit 2, never a traceback."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64)
    data = digits / "data.npz"
    endpoint = "cascade"
    if case == "missing config":
        config = tmp_path / "absent.yaml"
    elif case == "missing data":
        data = tmp_path / "absent.npz"
    elif case == "unknown endpoint":
        endpoint = "nope"
    elif case == "not a cascade":
        endpoint = "plain"
    elif case == "no labels":
        data = tmp_path / "unlabeled.npz"
        np.savez(data, X=np.load(digits / "data.npz")["X"])
    elif case == "wrong columns":
        data = tmp_path / "narrow.csv"
        data.write_text("a,b,label\n0.1,0.2,1\n0.3,0.4,2\n")
    else:
        config = bad_scorer(digits)
    result = invoke("calibrate", config, "--endpoint", endpoint, "--data", data,
                    "--plot", tmp_path / "p.png")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in result.output
    if case not in ("missing config",):
        assert "hint:" in result.output


@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from(sorted(OPERATORS)),
)
def test_candidates_make_every_distinct_cut(scores: list[float], op: str) -> None:
    """The short decimal thresholds split the scores in every distinct way, each once."""
    values = np.asarray(scores)
    cuts = {tuple(OPERATORS[op](values, t)) for t in candidates(values, op)}
    assert len(cuts) == len(candidates(values, op)) == len(np.unique(values)) + 1
