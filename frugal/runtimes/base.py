"""The Model seam: what the batcher calls (the records it returns live in frugal/types.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.types import Item, ModelRef, Prediction


@runtime_checkable
class Model(Protocol):
    """Called by the batcher from a worker thread; returns one prediction per item, in order.

    May raise on a bad item: the batcher then bisects the batch so only the bad items fail.
    """

    ref: ModelRef

    def predict_batch(self, items: Sequence[Item]) -> Sequence[Prediction]: ...


@runtime_checkable
class SizedModel(Model, Protocol):
    """A model whose cost grows with each item's size (tokens, pixels).

    The batcher calls ``item_size`` on the event loop before an item queues, so it must be cheap;
    it then forms batches of similar sizes, since padding to the longest item wastes compute.
    """

    def item_size(self, item: Item) -> int: ...


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifact(config: ModelConfig) -> Path:
    """Refuse an artifact that is missing or whose bytes are not the ones the config names."""
    if config.path is None:
        raise ArtifactError(f"model {config.key} names no file")
    path = config.path
    if not path.is_file():
        raise ArtifactError(f"model {config.key}: file not found: {path}")
    if config.sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != config.sha256.lower():
            raise ArtifactError(
                f"model {config.key}: sha256 mismatch for {path}: "
                f"config says {config.sha256}, file is {actual}",
                hint="the file changed since the config was written; if that is intended, "
                "put the new sha256 in frugal.yaml",
            )
    return path


def top_two(probabilities: Any) -> tuple[list[int], list[float], list[float]]:
    """Per row of a 2-D probability array: the argmax, its probability, and its margin over
    the runner-up (0 when there is one class); probabilities are clamped into [0, 1]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    best = p.argmax(axis=1)
    if p.shape[1] < 2:
        top = p[:, 0]
        return best.tolist(), top.tolist(), [0.0] * len(top)
    two = np.partition(p, -2, axis=1)[:, -2:]
    return best.tolist(), two[:, 1].tolist(), (two[:, 1] - two[:, 0]).tolist()


__all__ = [
    "Item",
    "Model",
    "ModelRef",
    "Prediction",
    "SizedModel",
    "sha256_of",
    "top_two",
    "verify_artifact",
]
