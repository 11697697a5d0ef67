"""``kind: text`` students: a small torch head on frozen MiniLM sentence embeddings.

The head (``hidden: 0``: one linear layer; ``hidden: N``: Linear-ReLU-Linear) is trained full
batch with Adam on the teacher's soft labels (cross-entropy against its probabilities) or hard
labels weighted by confidence, as distill_train.py does for scikit-learn. It is exported with
``torch.onnx.export`` (softmax included) and served by ``frugal.runtimes.minilm_head``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from frugal.config import ModelConfig, TensorSpec
from frugal.errors import InvalidInput
from frugal.optimize.distill_spec import StudentSpec
from frugal.optimize.distill_teacher import TeacherAnswers
from frugal.optimize.distill_train import ONNX_OPSET
from frugal.runtimes import sha256_of
from frugal.types import Item

FACTORY = "frugal.runtimes.minilm_head:make_model"


def embed(items: list[Item], threads: int = 1) -> np.ndarray:
    """MiniLM embeddings of the sentences, (n, 384) float32."""
    from frugal.runtimes.minilm import make_model

    texts = [i.decode() if isinstance(i, bytes) else i for i in items]
    if not all(isinstance(t, str) for t in texts):
        raise InvalidInput(
            "kind text needs sentences as items",
            field="--data",
            hint='write the data as .jsonl with {"input": "a sentence"} per line',
        )
    embedder = make_model(threads=threads)
    out = [embedder.embed(texts[s : s + 64]) for s in range(0, len(texts), 64)]
    return np.concatenate(out).astype(np.float32)


def fit_head(
    spec: StudentSpec, x: np.ndarray, answers: TeacherAnswers
) -> tuple[Any, list[Any], str]:
    """(the trained torch head ending in a softmax, its classes, "soft" or "hard")."""
    import torch

    classes, targets, weights, used = _targets(answers, spec.targets)
    if len(classes) < 2:
        raise InvalidInput(
            "the teacher gives one class for every item: nothing to distill", field="--data"
        )
    torch.manual_seed(spec.seed)
    hidden = int(spec.params["hidden"])
    width = x.shape[1]
    layers: list[Any] = (
        [torch.nn.Linear(width, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, len(classes))]
        if hidden > 0
        else [torch.nn.Linear(width, len(classes))]
    )
    logits = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(logits.parameters(), lr=float(spec.params["learning_rate"]))
    features = torch.from_numpy(x)
    target = torch.from_numpy(targets.astype(np.float32))
    weight = torch.from_numpy(weights.astype(np.float32))
    for _ in range(int(spec.params["epochs"])):
        optimizer.zero_grad()
        loss = -(target * torch.log_softmax(logits(features), dim=1)).sum(dim=1)
        (loss * weight).sum().div(weight.sum()).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return torch.nn.Sequential(logits, torch.nn.Softmax(dim=1)).eval(), classes, used


def head_labels(head: Any, classes: list[Any], x: np.ndarray) -> list[Any]:
    """The in-memory head's labels for embeddings ``x``."""
    import torch

    with torch.no_grad():
        p = head(torch.from_numpy(x)).numpy()
    return [classes[j] for j in p.argmax(axis=1)]


def export_head(head: Any, classes: list[Any], dest: Path, name: str) -> ModelConfig:
    """Write the head as ONNX; the python-runtime config that serves it (text in, label out)."""
    import torch

    sample = torch.zeros((2, int(head[0][0].in_features)), dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            head,
            (sample,),
            str(dest),
            input_names=["embedding"],
            output_names=["probabilities"],
            dynamic_axes={"embedding": {0: "batch"}, "probabilities": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    options = {
        "head_file": str(dest.resolve()),
        "head_sha256": sha256_of(dest),
        "classes": [_plain(c) for c in classes],
        "threads": 1,
    }
    return ModelConfig(
        name=name,
        runtime="python",
        factory=FACTORY,
        inputs=[TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        options=options,
    )


def _targets(
    answers: TeacherAnswers, targets: str
) -> tuple[list[Any], np.ndarray, np.ndarray, str]:
    """(classes, target rows summing to 1, per-item weights, "soft" or "hard")."""
    if targets == "soft" and answers.probabilities is not None:
        assert answers.classes is not None
        n = len(answers.labels)
        return list(answers.classes), answers.probabilities, np.ones(n), "soft"
    classes = sorted({_plain(v) for v in answers.labels}, key=str)
    index = {str(c): j for j, c in enumerate(classes)}
    rows = np.zeros((len(answers.labels), len(classes)))
    for i, label in enumerate(answers.labels):
        rows[i, index[str(_plain(label))]] = 1.0
    weights = answers.confidence if answers.confidence is not None else np.ones(len(rows))
    return classes, rows, np.asarray(weights, dtype=float), "hard"


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so the classes go into YAML as written."""
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["FACTORY", "embed", "export_head", "fit_head", "head_labels"]
