"""Any Python object with ``predict_batch``, built by a ``module:callable`` factory.

The factory gets the model's ``options`` as keyword arguments. Its object may return
``Prediction`` records or plain values (taken as predictions without confidence).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes.base import verify_artifact
from frugal.types import Item, ModelRef, Prediction


class PythonModel:
    def __init__(self, ref: ModelRef, target: Any) -> None:
        self.ref = ref
        self.target = target
        if hasattr(target, "item_size"):
            self.item_size = target.item_size

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        out = self.target.predict_batch(items)
        if len(out) != len(items):
            raise RuntimeError(f"predict_batch returned {len(out)} answers for {len(items)} items")
        return [p if isinstance(p, Prediction) else Prediction(p) for p in out]


def load(config: ModelConfig) -> PythonModel:
    assert config.factory is not None  # config validation guarantees it
    if config.path is not None:
        where = config.path if config.path.is_dir() else config.path.parent
        if config.path.is_file():
            verify_artifact(config)
        elif not config.path.is_dir():
            raise ArtifactError(f"model {config.key}: path not found: {config.path}")
        if str(where) not in sys.path:
            sys.path.insert(0, str(where))
    module_name, _, attr = config.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(f"model {config.key}: cannot import {config.factory}: {exc}") from exc
    try:
        target = factory(**config.options)
    except Exception as exc:  # user code: any failure means the model did not load
        raise ArtifactError(f"model {config.key}: {config.factory} raised {exc!r}") from exc
    if not callable(getattr(target, "predict_batch", None)):
        raise ArtifactError(f"model {config.key}: {config.factory} returned no predict_batch()")
    return PythonModel(ModelRef(config.name, config.version, config.sha256), target)
