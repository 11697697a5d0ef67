"""scikit-learn estimators saved with joblib.

joblib files are pickles, which run code when loaded: the sha256 in frugal.yaml is checked first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes.base import top_two, verify_artifact
from frugal.types import Item, ModelRef, Prediction


class SklearnModel:
    """Classifiers answer their label with max class probability as confidence."""

    def __init__(self, ref: ModelRef, estimator: Any) -> None:
        self.ref = ref
        self.estimator = estimator
        self._proba = hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        x = np.stack(items)
        if self._proba:
            best, confidences, margins = top_two(self.estimator.predict_proba(x))
            labels = self.estimator.classes_[best].tolist()
            return [
                Prediction(v, c, margin=m)
                for v, c, m in zip(labels, confidences, margins, strict=True)
            ]
        return [Prediction(v) for v in np.asarray(self.estimator.predict(x)).tolist()]


def load(config: ModelConfig) -> SklearnModel:
    import joblib

    if config.options:
        raise ArtifactError(
            f"model {config.key}: runtime sklearn takes no options "
            f"(got {', '.join(sorted(config.options))})"
        )
    path = verify_artifact(config)
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # a pickle can raise anything; report it as the file's fault
        raise ArtifactError(f"model {config.key}: cannot load {path}: {exc}") from exc
    if not hasattr(estimator, "predict"):
        raise ArtifactError(f"model {config.key}: {path} holds no estimator with predict()")
    return SklearnModel(ModelRef(config.name, config.version, config.sha256), estimator)
