"""A tier's cost per item at the batch size it will really see, for ``calibrate --arrival-batch``.

Pricing every tier at full batches hides what a cascade does to its later tiers: they get only
the escalated items, so their batches are small, and a model whose fixed cost per call dominates
(nearest neighbours, anything with Python overhead per call) costs many times more per item at
batch 1 than at batch 64. Each tier's busy time is measured at a few batch sizes (powers of two
up to the largest it can see: N or its ``max_batch_size``; ``frugal.optimize.batch_profile``),
and tier k is priced at a batch of N x (share of items reaching tier k) items, at least 1 and at
most that largest size, where N is the first tier's typical batch in production (``frugal
report``'s mean batch). A batch's busy time is interpolated linearly between the profiled sizes;
the size is not rounded, so the price moves smoothly with the share (a rounded size makes a
slightly higher share look cheaper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class BatchProfile:
    """One tier's measured busy seconds per batch at a few sizes; linear in between."""

    model: str
    sizes: tuple[int, ...]  # ascending, starting at 1
    busy_s: tuple[float, ...]  # median busy seconds of one batch of each size, non-decreasing

    def busy_at(self, size: float) -> float:
        return float(np.interp(size, self.sizes, self.busy_s))

    def busy_per_item(self, size: float) -> float:
        return self.busy_at(size) / max(1, size)

    def to_json(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "busy_s": list(self.busy_s),
            "busy_s_per_item": [b / s for s, b in zip(self.sizes, self.busy_s, strict=True)],
        }


def tier_batch_size(
    arrival_batch: int, share: float, batch_usd: tuple[tuple[int, ...], tuple[float, ...]]
) -> float:
    """The batch a tier sees when ``share`` of the first tier's batches of N items reach it."""
    return min(float(batch_usd[0][-1]), max(1.0, arrival_batch * share))


__all__ = ["BatchProfile", "tier_batch_size"]
