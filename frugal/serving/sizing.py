"""Which waiting items of a sized model (tokens, pixels) go together in the next batch.

A batch is padded to its longest item, so mixing short and long items wastes compute: on varied
sentences a batch of 32 in arrival order can be slower per item than batch 1. Rather than guess
how much padding a batch may carry, the batcher measures it: it fits

    busy_s = overhead_s + per_unit_s x padded_size        (padded_size = items x longest)

on its own recent batches, and takes the run of similar-sized items around the oldest waiting
one that saves the most busy time against running each alone: an item joins only if the call
overhead it shares outweighs the padding it adds. The oldest item always goes, so none starves.
Until the fit is known (or when sizes never vary), it takes the run that pads least.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class PaddedCostFit:
    """Least squares of busy seconds on padded size, weighted toward recent batches."""

    def __init__(self, *, decay: float = 0.98, min_batches: int = 8) -> None:
        self.decay = decay
        self.min_batches = min_batches
        self.batches = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0

    def observe(self, padded_size: int, busy_s: float) -> None:
        d = self.decay
        x = float(padded_size)
        self._w = d * self._w + 1.0
        self._x = d * self._x + x
        self._y = d * self._y + busy_s
        self._xx = d * self._xx + x * x
        self._xy = d * self._xy + x * busy_s
        self.batches += 1

    def estimate(self) -> tuple[float, float] | None:
        """(overhead_s, per_unit_s), or None while the data cannot tell them apart."""
        if self.batches < self.min_batches:
            return None
        mean_x = self._x / self._w
        mean_y = self._y / self._w
        var_x = self._xx / self._w - mean_x * mean_x
        if var_x <= (0.05 * mean_x) ** 2:  # sizes barely vary: no slope to learn
            return None
        per_unit = (self._xy / self._w - mean_x * mean_y) / var_x
        if per_unit <= 0:
            return None
        return max(0.0, mean_y - per_unit * mean_x), per_unit


def choose_window(sizes: Sequence[int], limit: int, cost: tuple[float, float] | None) -> list[int]:
    """Indices (into ``sizes``, oldest first) of the next batch; always includes index 0.

    With a cost fit, among the runs of size-sorted neighbours that hold the oldest item, takes
    the one that saves the most busy time against running each item alone:
    ``(n - 1) x overhead - per_unit x padding``. So an item joins only if the call overhead it
    shares outweighs the padding it adds, and a batch is never dearer than its items alone (a
    lone item saves 0). On equal savings the larger batch wins: more items answered now.
    """
    if cost is None:
        if len(sizes) <= limit:
            return list(range(len(sizes)))
        return least_padding_window(sizes, limit)
    overhead, per_unit = cost
    order, anchor, ordered, prefix = _by_size(sizes)
    tolerance = 1e-12 * (overhead + per_unit * max(ordered) * limit)
    best, best_savings = (anchor, anchor + 1), 0.0
    for start in range(max(0, anchor - limit + 1), anchor + 1):
        for end in range(anchor + 1, min(len(ordered), start + limit) + 1):
            n = end - start
            padding = n * ordered[end - 1] - (prefix[end] - prefix[start])
            savings = (n - 1) * overhead - per_unit * padding
            better = savings > best_savings + tolerance
            as_good_and_larger = savings >= best_savings - tolerance and n > best[1] - best[0]
            if better or as_good_and_larger:
                best, best_savings = (start, end), savings
    return order[best[0] : best[1]]


def least_padding_window(sizes: Sequence[int], limit: int) -> list[int]:
    """``limit`` items of similar size including the oldest (index 0), padding least.

    Sorts by size and, among the windows of ``limit`` neighbours that contain the oldest item,
    takes the one with the least padding (limit x largest - sum of sizes).
    """
    order, anchor, ordered, prefix = _by_size(sizes)
    best_start, best_waste = 0, math.inf
    for start in range(max(0, anchor - limit + 1), min(anchor, len(order) - limit) + 1):
        end = start + limit
        waste = limit * ordered[end - 1] - (prefix[end] - prefix[start])
        if waste < best_waste:
            best_start, best_waste = start, waste
    return order[best_start : best_start + limit]


def _by_size(sizes: Sequence[int]) -> tuple[list[int], int, list[int], list[int]]:
    """Indices sorted by size, where the oldest (index 0) landed, the sorted sizes, their
    prefix sums (so any run's total is one subtraction)."""
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    ordered = [sizes[i] for i in order]
    prefix = [0]
    for size in ordered:
        prefix.append(prefix[-1] + size)
    return order, order.index(0), ordered, prefix


__all__ = ["PaddedCostFit", "choose_window", "least_padding_window"]
