"""A model that does nothing: ``run.py``'s ``frugal-noop`` server serves W1's requests with it.

Why: what frugal costs a request with no model work at all (the request path, the batcher's
hand-off to a slot thread and back, the books) is the floor any model adds to; the difference
to the ``frugal`` server is the model's own share. Loaded by frugal's ``python`` runtime
(``factory: noop_model:make``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Noop:
    """Answers 0 for every item, without looking at it."""

    def predict_batch(self, items: Sequence[Any]) -> list[int]:
        return [0] * len(items)


def make() -> Noop:
    return Noop()
