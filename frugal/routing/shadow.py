"""Shadow traffic: does a candidate version agree with the answers being sent?

The shadow gets a copy of a request's items after the answer is decided; its answers are
compared item by item and discarded. Labels and strings agree when equal; numbers and arrays
(regression outputs, probabilities, embeddings) when every element is within ``tolerance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugal.types import ItemOutcome


def agree(answer: Any, shadow: Any, tolerance: float = 0.0) -> bool:
    if isinstance(answer, str | bytes) or isinstance(shadow, str | bytes):
        return bool(answer == shadow)
    try:
        a = np.asarray(answer, dtype=np.float64)
        b = np.asarray(shadow, dtype=np.float64)
    except (TypeError, ValueError):  # dicts, ragged lists: plain equality
        return bool(answer == shadow)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tolerance))


@dataclass(frozen=True, slots=True)
class Comparison:
    agreed: int
    disagreed: int
    failed: int  # items the shadow failed on (items the answer failed on are not compared)


def compare(
    answers: Sequence[ItemOutcome], shadows: Sequence[ItemOutcome], tolerance: float = 0.0
) -> Comparison:
    agreed = disagreed = failed = 0
    for sent, shadow in zip(answers, shadows, strict=True):
        if sent.prediction is None:
            continue
        if shadow.prediction is None:
            failed += 1
        elif agree(sent.prediction.value, shadow.prediction.value, tolerance):
            agreed += 1
        else:
            disagreed += 1
    return Comparison(agreed, disagreed, failed)


__all__ = ["Comparison", "agree", "compare"]
