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

import bisect
import math
from collections.abc import Iterator, Sequence


def choose_window(sizes: Sequence[int], limit: int, cost: tuple[float, float] | None) -> list[int]:
    """Indices (into ``sizes``, oldest first) of the next batch; always includes index 0.

    With a cost fit, takes the batch that saves the most busy time against running each item
    alone: ``(n - 1) x overhead - per_unit x padding``. So an item joins only if the call
    overhead it shares outweighs the padding it adds, and a batch is never dearer than its items
    alone (a lone item saves 0). On equal savings the larger batch wins: more answered now.
    """
    if cost is None:
        if len(sizes) <= limit:
            return list(range(len(sizes)))
        return least_padding_window(sizes, limit)
    overhead, per_unit = cost
    tolerance = 1e-12 * (overhead + per_unit * max(sizes) * limit)
    best: list[int] = [0]
    best_savings = 0.0
    runs = _Runs(sizes)
    for others in range(1, min(limit, len(sizes))):
        for run, padding in runs.of(others):
            savings = others * overhead - per_unit * padding
            if savings > best_savings + tolerance or (
                savings >= best_savings - tolerance and others + 1 > len(best)
            ):
                best, best_savings = [0, *run], savings
    return best


def least_padding_window(sizes: Sequence[int], limit: int) -> list[int]:
    """``limit`` items including the oldest (index 0) whose batch pads least."""
    if limit <= 1:
        return [0]
    best: list[int] = []
    best_padding = math.inf
    for run, padding in _Runs(sizes).of(limit - 1):
        if padding < best_padding:
            best, best_padding = [0, *run], padding
    return best


class _Runs:
    """Batches of the oldest item and some others, as (their indices, padding).

    For a given largest size, the batch that pads least holds the items closest below it, so
    the best batch with the oldest item is the oldest plus a run of the other items sorted by
    size: only those runs are tried (padding = items x largest - sum of sizes). Runs whose
    largest item is so far above the oldest that it alone pads more than the best so far are
    not tried: every later run pads at least its largest minus the oldest. Sorted once.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        self.oldest = sizes[0]
        self.order = sorted(range(1, len(sizes)), key=sizes.__getitem__)
        self.ordered = [sizes[i] for i in self.order]
        self.prefix = [0]
        for size in self.ordered:
            self.prefix.append(self.prefix[-1] + size)
        # Runs ending at or below the oldest's size pad n x oldest - sum: of those, only the
        # last (largest sum) is worth trying.
        self.last_below = bisect.bisect_right(self.ordered, self.oldest) - 1

    def of(self, others: int) -> Iterator[tuple[list[int], int]]:
        oldest, ordered, prefix = self.oldest, self.ordered, self.prefix
        n = others + 1
        best_padding = math.inf
        for end in range(max(others - 1, min(self.last_below, len(ordered) - 1)), len(ordered)):
            largest = max(oldest, ordered[end])
            if largest - oldest >= best_padding:
                break
            padding = n * largest - oldest - (prefix[end + 1] - prefix[end + 1 - others])
            best_padding = min(best_padding, padding)
            yield self.order[end + 1 - others : end + 1], padding


__all__ = ["choose_window", "least_padding_window"]
