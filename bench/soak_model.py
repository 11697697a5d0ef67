"""The soak's model: a real digits classifier plus a fixed device time per item and per batch.

bench/soak.py must push a real `frugal serve` to 10x its capacity with a Python load generator
on the same 2-core machine, so the model's capacity has to be low (about 100 req/s) without
burning the CPU that the server's HTTP path and the generator need. This model does what a small
accelerator-bound model does: the real work (scikit-learn's LogisticRegression on the bundled
digits, trained at load, ``predict_proba`` then the most probable label, so answers and
confidences are real), then it holds its worker for ``batch_ms + item_ms x items`` with the GIL
released, as a GPU kernel would. Capacity at full batches is about
``max_batch_size / (batch_ms + item_ms x max_batch_size)`` items/s.

Served by the ``python`` runtime (``factory: soak_model:make``, ``path`` this file, pinned by its
sha256); see docs/runtimes.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from frugal.runtimes import Prediction


class DeviceBoundDigits:
    """LogisticRegression on digits, then ``batch_ms + item_ms x len(items)`` of held time."""

    def __init__(self, item_ms: float, batch_ms: float) -> None:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        x, y = load_digits(return_X_y=True)
        # One BLAS thread: on a busy 2-core machine a threaded fit oversubscribes the cores and
        # takes seconds instead of a fifth of one (measured: 6.2 s against 0.18 s).
        with threadpool_limits(1):
            self.model = LogisticRegression(max_iter=2000).fit(x / 16, y)
        self.item_s = item_ms / 1000
        self.batch_s = batch_ms / 1000

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        started = time.perf_counter()
        rows = np.asarray(items, dtype=np.float64).reshape(-1, 64) / 16
        proba = self.model.predict_proba(rows)
        labels = proba.argmax(axis=1)
        answers = [Prediction(int(k), float(p[k])) for k, p in zip(labels, proba, strict=True)]
        # The device time: sleep releases the GIL, so the event loop and the load generator keep
        # the CPU, as they would while a GPU computes.
        hold_s = self.batch_s + self.item_s * len(items) - (time.perf_counter() - started)
        if hold_s > 0:
            time.sleep(hold_s)
        return answers


def make(item_ms: float = 10.0, batch_ms: float = 2.0) -> DeviceBoundDigits:
    """The factory `frugal.yaml` names (``options: {item_ms, batch_ms}``)."""
    return DeviceBoundDigits(item_ms, batch_ms)
