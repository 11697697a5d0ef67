"""``frugal distill``'s first step: the teacher's answers on every unlabeled item.

What a student can learn from depends on what the teacher gives:

- class probabilities (a scikit-learn classifier, a skl2onnx classifier, or a model whose answer
  is a row of class scores): soft labels, one probability per class per item;
- a label and a confidence (max class probability): hard labels weighted by confidence;
- a bare label: hard labels.

The teacher runs through frugal's runtimes in batches, as the server runs it, with a progress
bar. A skl2onnx classifier's probability columns are matched to labels by the rows where each
column is the argmax (columns that never win are dropped and the rows renormalized): ONNX files
carry no class list once ZipMap is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugal.errors import FrugalError, InvalidInput
from frugal.routing.labels import same_label
from frugal.runtimes import Model
from frugal.types import Item

TEACHER_BATCH = 64
_PROBABILITY_OUTPUTS = (("label", "probabilities"), ("output_label", "output_probability"))
_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


@dataclass(frozen=True, slots=True)
class TeacherAnswers:
    """One label per item; with ``probabilities`` (items x classes, columns in ``classes``
    order) the teacher gave soft labels; ``confidence`` is its max probability, where given."""

    labels: list[Any]
    probabilities: np.ndarray | None
    classes: list[Any] | None
    confidence: np.ndarray | None

    @property
    def soft(self) -> bool:
        return self.probabilities is not None

    def take(self, rows: np.ndarray) -> TeacherAnswers:
        """The answers of these rows only."""
        return TeacherAnswers(
            labels=[self.labels[i] for i in rows],
            probabilities=None if self.probabilities is None else self.probabilities[rows],
            classes=self.classes,
            confidence=None if self.confidence is None else self.confidence[rows],
        )


def run_teacher(
    model: Model, items: Sequence[Item], *, batch_size: int = TEACHER_BATCH, progress: bool = True
) -> TeacherAnswers:
    """The teacher's labels (and probabilities, where it gives them) for every item."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    labels: list[Any] = []
    rows: list[np.ndarray] = []
    confidence: list[float | None] = []
    zip_classes: list[Any] | None = None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=not progress,
        transient=True,
    )
    with bar:
        task = bar.add_task(f"teacher {model.ref.key}", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            batch_labels, batch_rows, batch_conf, classes = _answer(model, batch)
            labels.extend(batch_labels)
            if batch_rows is not None:
                rows.append(batch_rows)
            confidence.extend(batch_conf)
            zip_classes = classes if classes is not None else zip_classes
            bar.advance(task, len(batch))
    conf = None if any(c is None for c in confidence) else np.asarray(confidence, dtype=float)
    if not rows:
        return TeacherAnswers(labels, None, None, conf)
    probabilities = np.concatenate(rows).astype(np.float64)
    if zip_classes is not None:
        return TeacherAnswers(labels, probabilities, zip_classes, conf)
    probabilities, classes = _columns_by_argmax(probabilities, labels)
    return TeacherAnswers(labels, probabilities, classes, conf)


def _answer(
    model: Model, batch: Sequence[Item]
) -> tuple[list[Any], np.ndarray | None, list[float | None], list[Any] | None]:
    """(labels, probability rows or None, confidences, class list when the model gives it)."""
    estimator = getattr(model, "estimator", None)
    try:
        if estimator is not None and hasattr(estimator, "predict_proba"):
            p = np.asarray(estimator.predict_proba(np.stack(batch)), dtype=np.float64)
            classes = np.asarray(estimator.classes_).tolist()
            labels = [classes[j] for j in p.argmax(axis=1)]
            return labels, p, p.max(axis=1).tolist(), classes
        session = getattr(model, "session", None)
        if session is not None and _probability_output(session) is not None:
            return _onnx_answer(session, batch)
        predictions = model.predict_batch(batch)
    except FrugalError:
        raise
    except Exception as exc:  # the teacher's own failure: say which model, never a traceback
        raise InvalidInput(
            f"teacher {model.ref.key} failed on the data: {exc}",
            field="--data",
            hint="the data's columns must be the teacher's inputs (same features, same order)",
        ) from exc
    values = [p.value for p in predictions]
    if values and _is_score_row(values[0]):
        scores = np.asarray(values, dtype=np.float64)
        p = _as_probabilities(scores)
        return p.argmax(axis=1).tolist(), p, p.max(axis=1).tolist(), list(range(p.shape[1]))
    return values, None, [p.confidence for p in predictions], None


def _onnx_answer(
    session: Any, batch: Sequence[Item]
) -> tuple[list[Any], np.ndarray, list[float | None], list[Any] | None]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InvalidInput("a teacher with several ONNX inputs is not supported", field="--teacher")
    dtype = _ONNX_DTYPES.get(inputs[0].type, np.float32)
    feed = {inputs[0].name: np.stack([np.asarray(i) for i in batch]).astype(dtype)}
    names = _probability_output(session)
    assert names is not None
    label_out, proba_out = session.run(list(names), feed)
    labels = np.asarray(label_out).tolist()
    classes = None
    if isinstance(proba_out, list):  # ZipMap: a {label: p} per row names the classes
        classes = list(proba_out[0].keys())
        p = np.array([[row[c] for c in classes] for row in proba_out], dtype=np.float64)
    else:
        p = np.asarray(proba_out, dtype=np.float64)
    return labels, p, p.max(axis=1).tolist(), classes


def _probability_output(session: Any) -> tuple[str, str] | None:
    names = {o.name for o in session.get_outputs()}
    return next((pair for pair in _PROBABILITY_OUTPUTS if set(pair) <= names), None)


def _columns_by_argmax(p: np.ndarray, labels: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """Name each probability column by the label of the rows it wins; drop columns never won."""
    winners = p.argmax(axis=1)
    classes: dict[int, Any] = {}
    for column, label in zip(winners.tolist(), labels, strict=True):
        known = classes.setdefault(column, label)
        if not same_label(known, label):
            raise InvalidInput(
                "the teacher's labels do not follow its probabilities' argmax",
                field="--teacher",
                hint="distill a classifier whose label is its most probable class",
            )
    keep = sorted(classes)
    kept = p[:, keep]
    kept = kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-12)
    return kept, [classes[c] for c in keep]


def _is_score_row(value: Any) -> bool:
    if not isinstance(value, list | tuple | np.ndarray):
        return False
    row = np.asarray(value)
    return row.ndim == 1 and row.size > 1 and row.dtype.kind in "fiu"


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are distributions as they are; logits through a softmax."""
    sums = scores.sum(axis=1)
    if scores.min() >= 0 and np.allclose(sums, 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


__all__ = ["TEACHER_BATCH", "TeacherAnswers", "run_teacher"]
