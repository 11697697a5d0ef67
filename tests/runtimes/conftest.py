"""Fixtures shared by the runtime tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="session")
def digits_split() -> Split:
    """Digits scaled to [0, 1], split 75/25 with a fixed seed: train and held-out rows."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16.0).astype(np.float32), y, test_size=0.25, random_state=0
    )
    return x_train, x_test, y_train, y_test
