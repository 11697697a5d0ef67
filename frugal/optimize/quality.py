"""How much a variant's answers differ from the fp32 model's, on the same items.

- Classifiers (answers are labels, or rows of scores read by argmax) with labeled data: accuracy;
  the drop is fp32 accuracy minus the variant's, in points as a fraction (0.01 = 1 point).
- Classifiers without labels: agreement with the fp32 labels; the drop is 1 - agreement.
- Embedders and other vector outputs: cosine similarity of each answer to the fp32 one, mean and
  min; the drop is 1 - mean cosine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugal.routing.labels import same_label
from frugal.runtimes.base import Model
from frugal.types import Item

QUALITY_BATCH = 64


@dataclass(frozen=True, slots=True)
class Quality:
    """One variant's quality against the fp32 model; ``metric`` says what ``value`` is."""

    metric: str  # "accuracy", "agreement" or "cosine"
    value: float  # accuracy, agreement, or mean cosine
    drop: float  # vs the fp32 model, on the same scale (see the module docstring)
    min_cosine: float | None = None

    def describe(self) -> str:
        if self.metric == "cosine":
            return f"cos {self.value:.4f} ({self.min_cosine:.4f})"
        return f"{'acc' if self.metric == 'accuracy' else 'agree'} {100 * self.value:.2f}%"


def answers(model: Model, items: Sequence[Item]) -> list[Any]:
    """The model's answer values for every item, in batches of QUALITY_BATCH."""
    values: list[Any] = []
    for start in range(0, len(items), QUALITY_BATCH):
        values.extend(p.value for p in model.predict_batch(items[start : start + QUALITY_BATCH]))
    return values


def is_vector(values: Sequence[Any]) -> bool:
    return bool(values) and isinstance(values[0], list | tuple | np.ndarray)


def baseline_quality(reference: Sequence[Any], labels: Sequence[Any] | None) -> Quality:
    """The fp32 model's own line: accuracy with labels, else agreement/cosine 1."""
    if labels is not None and (not is_vector(reference) or _score_rows(reference)):
        return Quality("accuracy", _accuracy(reference, labels), 0.0)
    if is_vector(reference):
        return Quality("cosine", 1.0, 0.0, min_cosine=1.0)
    return Quality("agreement", 1.0, 0.0)


def compare(
    reference: Sequence[Any], variant: Sequence[Any], labels: Sequence[Any] | None
) -> Quality:
    """The variant's quality and drop against the fp32 answers (and labels, when given)."""
    base = baseline_quality(reference, labels)
    if base.metric == "accuracy":
        assert labels is not None
        value = _accuracy(variant, labels)
        return Quality("accuracy", value, base.value - value)
    if base.metric == "agreement":
        value = _accuracy(variant, [_label(v) for v in reference])
        return Quality("agreement", value, 1.0 - value)
    a = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    b = np.asarray(variant, dtype=np.float64).reshape(len(variant), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines = (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    mean = float(cosines.mean())
    return Quality("cosine", mean, 1.0 - mean, min_cosine=float(cosines.min()))


def _accuracy(values: Sequence[Any], labels: Sequence[Any]) -> float:
    predicted = [_label(v) for v in values]
    hits = sum(same_label(p, y) for p, y in zip(predicted, labels, strict=True))
    return hits / len(labels)


def _label(value: Any) -> Any:
    """A label answer as it is; a row of class scores as its argmax."""
    if isinstance(value, list | tuple | np.ndarray):
        return int(np.argmax(np.asarray(value)))
    return value


def _score_rows(values: Sequence[Any]) -> bool:
    """Whether vector answers are rows of class scores (1-D, numbers), readable by argmax."""
    first = np.asarray(values[0])
    return first.ndim == 1 and first.dtype.kind in "fiu"


__all__ = ["QUALITY_BATCH", "Quality", "answers", "baseline_quality", "compare", "is_vector"]
