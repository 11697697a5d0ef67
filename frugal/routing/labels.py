"""When an answer matches a label: the one comparison calibration, quality checks and the drift
check share, so an item counts as right in the server exactly when it did when measured."""

from __future__ import annotations

import numpy as np


def same_label(a: object, b: object) -> bool:
    """Labels compare as numbers when both are numbers (3 == 3.0, numpy's too), else as text."""
    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return float(a) == float(b)
    return str(a) == str(b)


__all__ = ["same_label"]
