"""How long a model version's batch holds a worker, learned from its own recent batches.

The batcher admits an item only if it can expect to answer it before the item's deadline
(docs/batching.md, "Admission by expected wait"). That needs the time a batch of ``n`` items
takes, which depends on ``n``: a call has a fixed cost and a cost per item. So this fits

    batch_s = overhead_s + per_item_s x n

on the wall time of recent batches, from release to answer: what an item waiting behind them
sees, including a wait for a free slot and any slowdown from other threads. Recent batches
weigh more (each older one by ``decay``), so the fit follows a machine that gets busier.

When the sizes seen barely vary (a lightly loaded model runs batches of 1, an overloaded one
full batches), there is no slope to learn, and a batch of another size is priced at the least
it can take: the mean batch time for a larger one (a batch is no faster for holding more
items), the mean time per item for a smaller one. Exact at the sizes seen; elsewhere it errs
toward a shorter wait, so admission refuses only what even that could not answer in time. (The
other way, pricing a batch of 32 as 32 batches of 1, would refuse half of a burst that a model
with a fixed cost per call answers in time, until a slope is learned.)
"""

from __future__ import annotations


class RecentLinearFit:
    """Least squares of ``y`` on ``x``, each older point weighed ``decay`` times less.

    O(1) per point and per estimate. The batcher keeps two: batch wall time by item count
    (``ServiceTime``) and, for sized models, busy time by padded size (serving/sizing.py).
    """

    def __init__(self, *, decay: float, min_points: int = 8) -> None:
        self.decay = decay
        self.min_points = min_points  # before this many, no slope is claimed
        self.points = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0

    def observe(self, x: float, y: float) -> None:
        d = self.decay
        self._w = d * self._w + 1.0
        self._x = d * self._x + x
        self._y = d * self._y + y
        self._xx = d * self._xx + x * x
        self._xy = d * self._xy + x * y
        self.points += 1

    def means(self) -> tuple[float, float]:
        """The weighted means of x and y (call after at least one point)."""
        return self._x / self._w, self._y / self._w

    def estimate(self) -> tuple[float, float] | None:
        """(intercept >= 0, slope > 0), or None while the data cannot tell them apart."""
        if self.points < self.min_points:
            return None
        mean_x, mean_y = self.means()
        var_x = self._xx / self._w - mean_x * mean_x
        if var_x <= (0.05 * mean_x) ** 2:  # x barely varies: no slope to learn
            return None
        slope = (self._xy / self._w - mean_x * mean_y) / var_x
        if slope <= 0:  # noise, or a cost that is the same at any size
            return None
        return max(0.0, mean_y - slope * mean_x), slope


class ServiceTime:
    """A batch's wall seconds by its item count: the fit, or the least a batch can take."""

    def __init__(self, *, decay: float = 0.95, min_batches: int = 8) -> None:
        self._fit = RecentLinearFit(decay=decay, min_points=min_batches)
        self._line: tuple[float, float] | None = None  # (overhead_s, per_item_s), when known
        self._mean_items = 1.0
        self._mean_s = 0.0

    @property
    def batches(self) -> int:
        return self._fit.points

    def observe(self, items: int, wall_s: float) -> None:
        """A batch of ``items`` took ``wall_s`` from its release to its answers."""
        if items <= 0 or not wall_s >= 0:
            return
        self._fit.observe(float(items), wall_s)
        self._mean_items, self._mean_s = self._fit.means()
        self._line = self._fit.estimate()

    @property
    def known(self) -> bool:
        """True once a batch has finished: before that, nothing is estimated."""
        return self.batches > 0

    def batch_s(self, items: int) -> float:
        """Expected wall seconds of a batch of ``items`` (0 before any batch finished)."""
        if self._line is None:  # the least a batch of this size can take, from the mean seen
            return self._mean_s * min(1.0, items / self._mean_items)
        overhead_s, per_item_s = self._line
        return overhead_s + per_item_s * items


__all__ = ["RecentLinearFit", "ServiceTime"]
