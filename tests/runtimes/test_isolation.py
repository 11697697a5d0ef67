"""predict_isolated: the failure isolation the batcher and calibration share, on real digits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from frugal.runtimes import predict_isolated
from frugal.runtimes.sklearn import SklearnModel
from frugal.types import ModelRef, Prediction


class CountingModel:
    """The real digits model, counting the batch sizes it is called with."""

    def __init__(self, inner: SklearnModel) -> None:
        self.ref = inner.ref
        self.inner = inner
        self.calls: list[int] = []

    def predict_batch(self, items: Sequence[Any]) -> Sequence[Prediction]:
        self.calls.append(len(items))
        return self.inner.predict_batch(items)


@pytest.fixture(scope="module")
def model(digits_model_file: Path) -> SklearnModel:
    return SklearnModel(ModelRef("digits", "1"), joblib.load(digits_model_file))


def test_clean_batch_is_one_call(model: SklearnModel, digits: Any) -> None:
    """A batch with no bad item is answered by one predict_batch call, in order."""
    x, _ = digits
    counting = CountingModel(model)
    results = predict_isolated(counting, list(x[:16]))
    assert counting.calls == [16]
    expected = [p.value for p in model.predict_batch(list(x[:16]))]
    assert [r.value for r in results if isinstance(r, Prediction)] == expected


def test_bad_items_fail_alone(model: SklearnModel, digits: Any) -> None:
    """Two rows scikit-learn refuses (infinite) fail as exceptions; the other 14 are answered."""
    x, _ = digits
    rows = [x[i].copy() for i in range(16)]
    rows[3][0] = rows[12][5] = np.inf
    counting = CountingModel(model)
    results = predict_isolated(counting, rows)
    assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [3, 12]
    good = [i for i in range(16) if i not in (3, 12)]
    expected = [p.value for p in model.predict_batch([rows[i] for i in good])]
    answered = [r for r in results if not isinstance(r, BaseException)]  # in order: the good ones
    assert [r.value for r in answered] == expected
    assert counting.calls[0] == 16 and len(counting.calls) < 16  # bisected, not item by item


class ShortModel(CountingModel):
    """Drops the last answer of any batch larger than one: a broken runtime."""

    def predict_batch(self, items: Sequence[Any]) -> Sequence[Prediction]:
        out = list(super().predict_batch(items))
        return out[:-1] if len(out) > 1 else out


def test_a_short_answer_counts_as_failure(model: SklearnModel, digits: Any) -> None:
    """A batch answering fewer items than given is bisected down to single items."""
    x, _ = digits
    results = predict_isolated(ShortModel(model), list(x[:4]))
    assert all(isinstance(r, Prediction) for r in results)
