"""Train the student on the teacher's answers, and export it to ONNX.

Soft labels (``targets: soft``, when the teacher gives probabilities): every item becomes one
training row per class the teacher gives at least MIN_SOFT_WEIGHT, weighted by that probability.
For a classifier trained by weighted log-loss (logistic regression, an MLP) this is exactly
cross-entropy against the teacher's distribution; for a tree it is the weighted impurity of the
same distribution. So the student learns how sure the teacher was, not only what it chose, and
the student stays a plain classifier: it converts with skl2onnx and answers a label with its max
probability as confidence, which a cascade gate reads.

Hard labels (``targets: hard``, or a teacher without probabilities): the teacher's label,
weighted by its confidence where it gives one (an unsure teacher's answer counts less).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from frugal.errors import InvalidInput
from frugal.optimize.distill_spec import StudentSpec, make_estimator
from frugal.optimize.distill_teacher import TeacherAnswers
from frugal.optimize.sklearn_onnx import sklearn_to_onnx
from frugal.types import Item

MIN_SOFT_WEIGHT = 1e-3  # classes the teacher gives less are left out (rows stay few)
ONNX_OPSET = 17  # both students, the scikit-learn and the MiniLM head (distill_text.py)


def training_rows(
    x: np.ndarray, answers: TeacherAnswers, targets: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(X, y, sample_weight, what was used: "soft" or "hard") for the student's fit."""
    if targets == "soft" and answers.probabilities is not None:
        assert answers.classes is not None
        p = answers.probabilities
        rows, cols = np.nonzero(p >= MIN_SOFT_WEIGHT)
        y = np.asarray(answers.classes, dtype=object)[cols]
        return x[rows], _label_array(y), p[rows, cols], "soft"
    weights = answers.confidence if answers.confidence is not None else np.ones(len(x))
    return x, _label_array(np.asarray(answers.labels, dtype=object)), weights, "hard"


def fit_student(spec: StudentSpec, x: np.ndarray, answers: TeacherAnswers) -> tuple[Any, str]:
    """The fitted scikit-learn student and which targets it learned from."""
    from sklearn.exceptions import ConvergenceWarning

    estimator = make_estimator(spec)
    features, y, weights, used = training_rows(x, answers, spec.targets)
    if len({str(v) for v in y}) < 2:
        raise InvalidInput(
            "the teacher gives one class for every item: nothing to distill",
            field="--data",
            hint="give more varied unlabeled data",
        )
    with warnings.catch_warnings():
        # A capped max_iter is the spec's choice; the report measures what it bought.
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            estimator.fit(features, y, sample_weight=weights)
        except ValueError as exc:
            raise InvalidInput(
                f"student spec: fitting {spec.estimator} failed: {exc}", field="params"
            ) from exc
    return estimator, used


def export_onnx(estimator: Any, n_features: int, dest: Path) -> None:
    """The student as ONNX (skl2onnx, ZipMap removed): answers label + probabilities."""
    sklearn_to_onnx(estimator, [None, n_features], dest, target_opset=ONNX_OPSET,
                    failure="cannot export the student to ONNX")  # fmt: skip


def feature_matrix(items: list[Item]) -> np.ndarray:
    """The items as one float32 matrix (one row per item), for fitting a tabular student."""
    try:
        x = np.stack([np.asarray(i, dtype=np.float32).reshape(-1) for i in items])
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"kind sklearn needs numeric items of one size: {exc}",
            field="--data",
            hint="for sentences use `kind: text` in the student spec",
        ) from None
    return x


def _label_array(y: np.ndarray) -> np.ndarray:
    """Numbers as int64 (or float), else text: what skl2onnx can put in its label output."""
    values = y.tolist()
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, int | float | np.number) for v in values):
        return np.asarray(values, dtype=np.float64)
    return np.asarray([str(v) for v in values])


__all__ = ["MIN_SOFT_WEIGHT", "export_onnx", "feature_matrix", "fit_student", "training_rows"]
