"""One bad item fails alone: a batch that raises is bisected until each bad item is found.

Shared by the batcher (serving) and the toolkit's measuring runs (``frugal calibrate``), so an
item that fails in the server fails the same way when a cascade is calibrated, and neither keeps
its own copy of the rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from frugal.runtimes.base import Model
from frugal.types import Item, Prediction


def predict_isolated(model: Model, items: Sequence[Item]) -> list[Prediction | BaseException]:
    """One answer or one exception per item, in order; the batch is bisected on failure.

    A batch that answers a different number of items than it was given counts as failed too.
    A clean batch costs one ``predict_batch`` call; k bad items cost about 2 k log2(n) more.
    """
    batch = list(items)
    try:
        out = list(model.predict_batch(batch))
        if len(out) != len(batch):
            raise RuntimeError(f"predict_batch gave {len(out)} answers for {len(batch)} items")
        return list(out)
    except Exception as exc:
        if len(batch) == 1:
            return [exc]
        mid = len(batch) // 2
        return predict_isolated(model, batch[:mid]) + predict_isolated(model, batch[mid:])


__all__ = ["predict_isolated"]
