"""frugal distill: a student trained on a real digits teacher's answers, exported to ONNX,
measured against the teacher, dropped into a cascade that frugal validate accepts; bad inputs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner, Result
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeClassifier
from sklearn.neural_network import MLPClassifier

from frugal.cli import main
from frugal.config import ModelConfig
from frugal.optimize.distill_spec import parse_spec
from frugal.optimize.distill_teacher import run_teacher
from frugal.optimize.distill_train import export_onnx, feature_matrix, fit_student
from frugal.runtimes import load_model, sha256_of
from tests.optimize.conftest import Digits, write_csv

FAST = ("--min-repeats", "3", "--min-seconds", "0", "--batch-size", "8")
LR_SPEC = "kind: sklearn\nestimator: LogisticRegression\nparams: {C: 10, max_iter: 300}\nseed: 0\n"


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    """teacher.joblib (an MLP on rows :600), unlabeled.npz (600:1200), labels.npz (1200:)."""
    x, y = digits01
    folder = tmp_path_factory.mktemp("distill")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((64,), max_iter=300, random_state=0).fit(x[:600], y[:600])
    joblib.dump(mlp, folder / "teacher.joblib")
    np.savez(folder / "unlabeled.npz", X=x[600:1200])
    np.savez(folder / "labels.npz", X=x[1200:], y=y[1200:])
    (folder / "lr.yaml").write_text(LR_SPEC)
    return folder


def spec_file(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_distill_end_to_end(setup: Path, tmp_path: Path) -> None:
    """A logistic-regression student agrees with the MLP teacher on held-out items, its ONNX
    file matches its sha256, and its cascade config passes frugal validate."""
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", setup / "teacher.joblib", "--student-spec",
                    setup / "lr.yaml", "--data", setup / "unlabeled.npz", "--labels",
                    setup / "labels.npz", "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["format"] == "frugal-distill/1"
    assert report["targets_used"] == "soft"
    assert (report["train_items"], report["holdout_items"]) == (480, 120)
    assert report["agreement"] >= 0.85
    assert report["onnx_agreement"] == 1.0
    student = report["student"]
    assert sha256_of(out / "teacher-student.onnx") == student["sha256"]
    assert report["models_entry"]["sha256"] == student["sha256"]
    assert student["size_bytes"] < report["teacher"]["size_bytes"]
    assert report["labeled_items"] == 597
    assert 0.8 <= student["accuracy"] <= 1 and 0.8 <= report["teacher"]["accuracy"] <= 1
    assert [p["batch_size"] for p in student["points"]] == [1, 8]
    assert all(p["usd_per_1k"] > 0 for p in student["points"] + report["teacher"]["points"])
    calibration = report["calibration"]
    assert calibration["calibration_items"] + calibration["holdout_items"] == 597
    assert calibration["confidence"] == 0.95 and calibration["max_drop"] == 0.005
    assert calibration["teacher_alone_usd_per_1k"] > 0
    cascade = (out / "frugal.yaml").read_text()
    if calibration["threshold"] is not None:
        assert f">= {calibration['threshold']!r}" in cascade
    checked = invoke("validate", out / "frugal.yaml")
    assert checked.exit_code == 0, checked.output
    assert "model teacher-student:1 (onnx) loaded" in checked.output
    assert "agreement with the teacher" in result.output and "student / teacher" in result.output


def test_a_student_that_cannot_follow_has_low_agreement(setup: Path, tmp_path: Path) -> None:
    """A depth-1 tree (two leaves for ten digits) agrees with the teacher on few items: the
    agreement is measured, not assumed."""
    spec = spec_file(tmp_path, "kind: sklearn\nestimator: DecisionTreeClassifier\n"
                     "params: {max_depth: 1}\n")  # fmt: skip
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", setup / "teacher.joblib", "--student-spec", spec,
                    "--data", setup / "unlabeled.npz", "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["agreement"] < 0.35
    assert report["calibration"] is None and report["labels"] is None
    assert "not calibrated" in result.output


def test_exported_onnx_answers_as_the_in_memory_student(
    setup: Path, digits01: Digits, tmp_path: Path
) -> None:
    """Every label the ONNX file answers through the onnx runtime is the in-memory student's,
    for a soft-label and a hard-label student."""
    x, _ = digits01
    teacher = joblib.load(setup / "teacher.joblib")
    items = list(x[600:1000])
    config = ModelConfig(name="t", runtime="sklearn", path=setup / "teacher.joblib",
                         sha256=sha256_of(setup / "teacher.joblib"))  # fmt: skip
    answers = run_teacher(load_model(config), items, progress=False)
    assert answers.soft and answers.classes == teacher.classes_.tolist()
    features = feature_matrix(items)
    for targets in ("soft", "hard"):
        spec = parse_spec({"kind": "sklearn", "estimator": "LogisticRegression",
                           "params": {"max_iter": 300}, "targets": targets})  # fmt: skip
        student, used = fit_student(spec, features, answers)
        assert used == targets
        path = tmp_path / f"{targets}.onnx"
        export_onnx(student, 64, path)
        onnx = load_model(ModelConfig(name="s", runtime="onnx", path=path, sha256=sha256_of(path)))
        served = [p.value for p in onnx.predict_batch(list(x[1200:]))]
        assert served == student.predict(x[1200:]).tolist()
        assert all(p.confidence is not None for p in onnx.predict_batch(list(x[1200:1210])))


def test_teacher_without_probabilities_gives_hard_labels(digits01: Digits, tmp_path: Path) -> None:
    """A RidgeClassifier teacher (labels only) trains the student on hard labels, from CSV."""
    x, y = digits01
    joblib.dump(RidgeClassifier().fit(x[:600], y[:600]), tmp_path / "ridge.joblib")
    data = write_csv(tmp_path / "unlabeled.csv", x[600:900])
    spec = spec_file(tmp_path, LR_SPEC)
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", tmp_path / "ridge.joblib", "--student-spec", spec,
                    "--data", data, "-o", out, "--name", "small", *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["targets_used"] == "hard" and report["agreement"] >= 0.8
    assert (out / "small.onnx").is_file()


def test_teacher_named_in_a_config(setup: Path, tmp_path: Path) -> None:
    """--teacher names a model of --config; its instance prices both; JSONL data is read."""
    x = np.load(setup / "unlabeled.npz")["X"][:200]
    data = tmp_path / "unlabeled.jsonl"
    data.write_text("".join(json.dumps({"input": row.tolist()}) + "\n" for row in x))
    config = tmp_path / "frugal.yaml"
    teacher = setup / "teacher.joblib"
    config.write_text(
        f"instance: {{price_usd_per_hour: 0.5, slots: 1}}\nmodels:\n  - name: big\n"
        f"    runtime: sklearn\n    path: {teacher}\n    sha256: {sha256_of(teacher)}\n"
        "    inputs: [{name: x, datatype: FP32, shape: [-1, 64]}]\n"
        "endpoints:\n  - {name: e, model: big}\n"
    )
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", "big:1", "--config", config, "--student-spec",
                    setup / "lr.yaml", "--data", data, "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["instance"]["price_usd_per_hour"] == 0.5
    assert report["student"]["name"] == "big-student:1"
    assert invoke("validate", out / "frugal.yaml").exit_code == 0


@pytest.mark.parametrize(
    ("spec", "flag", "message"),
    [
        ("kind: sklearn\nestimator: SVC\n", None, "estimator: 'SVC': choose one of"),
        ("kind: sklearn\nestimator: LogisticRegression\nparams: {n_jobs: 4}\n", None,
         "params.n_jobs: not allowed"),
        ("kind: forest\n", None, "kind: 'forest': choose sklearn or text"),
        ("kind: sklearn\nestimator: LogisticRegression\ncolour: red\n", None, "colour: unknown"),
        ("kind: sklearn\nestimator: LogisticRegression\nparams: {C: -1}\n", None, "params"),
        (LR_SPEC, ("--teacher", "missing.joblib"), "--teacher missing.joblib: no such model"),
        (LR_SPEC, ("--data", "data.txt"), "--data data.txt: file not found"),
        (LR_SPEC, ("--labels", "unlabeled.npz"), "--labels"),
        (LR_SPEC, ("--config", "none.yaml"), "--config none.yaml: file not found"),
        (LR_SPEC, ("--name", "teacher"), "--name teacher: that is the teacher's name"),
    ],
)  # fmt: skip
def test_bad_inputs_exit_2_naming_the_field(
    setup: Path, tmp_path: Path, spec: str, flag: tuple[str, str] | None, message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A bad spec, a missing file or an unlabeled --labels exits 2 with a message naming it."""
    monkeypatch.chdir(setup)
    spec_path = spec_file(tmp_path, spec)
    args = {"--teacher": "teacher.joblib", "--data": "unlabeled.npz"}
    if flag is not None:
        args[flag[0]] = flag[1]
    if flag is not None and flag[0] == "--config":
        args["--teacher"] = "big"
    argv = [a for pair in args.items() for a in pair]
    result = invoke("distill", "--student-spec", spec_path, *argv, "-o", tmp_path / "o", *FAST)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_spec_file_names_the_flag(setup: Path, tmp_path: Path) -> None:
    """A --student-spec that does not exist is named, exit 2."""
    result = invoke("distill", "--teacher", setup / "teacher.joblib", "--student-spec",
                    tmp_path / "nope.yaml", "--data", setup / "unlabeled.npz")  # fmt: skip
    assert result.exit_code == 2 and "--student-spec" in result.output


def test_onnx_teacher_gives_soft_labels(models_dir: Path, setup: Path, tmp_path: Path) -> None:
    """A skl2onnx classifier teacher's probability columns are matched to its labels: the
    student learns soft labels from an ONNX file and follows it."""
    out = tmp_path / "out"
    teacher, data = models_dir / "digits-mlp.onnx", setup / "unlabeled.npz"
    result = invoke("distill", "--teacher", teacher, "--student-spec", setup / "lr.yaml",
                    "--data", data, "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["targets_used"] == "soft" and report["teacher"]["runtime"] == "onnx"
    assert report["agreement"] >= 0.85


def test_onnx_teacher_classes_follow_its_labels(models_dir: Path, digits01: Digits) -> None:
    """The probability columns of an ONNX teacher are named by its label output: argmax of the
    soft labels is the teacher's label on every item."""
    x, _ = digits01
    path = models_dir / "digits-mlp.onnx"
    model = load_model(ModelConfig(name="t", runtime="onnx", path=path, sha256=sha256_of(path)))
    answers = run_teacher(model, list(x[:300]), batch_size=50, progress=False)
    assert answers.probabilities is not None and answers.classes is not None
    argmax = [answers.classes[j] for j in answers.probabilities.argmax(axis=1)]
    assert argmax == answers.labels
    assert np.allclose(answers.probabilities.sum(axis=1), 1.0)
