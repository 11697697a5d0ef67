"""The scikit-learn runtime's confidence and margin, on a model trained in the test suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from frugal.config import ModelConfig
from frugal.runtimes import load_model, sha256_of


def test_margin_is_the_top_probability_minus_the_runner_up(
    digits_model_file: Path, digits: Any
) -> None:
    """A cascade gate can read how torn the classifier was between its two best classes."""
    import joblib

    x, _ = digits
    estimator = joblib.load(digits_model_file)
    proba = np.sort(estimator.predict_proba(x[1200:1300]), axis=1)
    model = load_model(
        ModelConfig(name="d", runtime="sklearn", path=digits_model_file,
                    sha256=sha256_of(digits_model_file))
    )  # fmt: skip
    predictions = model.predict_batch(list(x[1200:1300]))
    assert [p.margin for p in predictions] == pytest.approx((proba[:, -1] - proba[:, -2]).tolist())
    assert all(0.0 <= p.margin <= p.confidence for p in predictions
               if p.margin is not None and p.confidence is not None)  # fmt: skip
