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


class ServiceTime:
    """Least squares of a batch's wall seconds on its item count, weighted toward recent ones.

    O(1) per batch and per estimate: the batcher calls ``batch_s`` on every submit.
    """

    def __init__(self, *, decay: float = 0.95, min_batches: int = 8) -> None:
        self.decay = decay
        self.min_batches = min_batches  # before this many, the per-item mean only
        self.batches = 0
        self._w = self._x = self._y = self._xx = self._xy = 0.0
        self._fit: tuple[float, float] | None = None  # (overhead_s, per_item_s), when known
        self._mean_items = 1.0
        self._mean_s = 0.0

    def observe(self, items: int, wall_s: float) -> None:
        """A batch of ``items`` took ``wall_s`` from its release to its answers."""
        if items <= 0 or not wall_s >= 0:
            return
        d = self.decay
        x = float(items)
        self._w = d * self._w + 1.0
        self._x = d * self._x + x
        self._y = d * self._y + wall_s
        self._xx = d * self._xx + x * x
        self._xy = d * self._xy + x * wall_s
        self.batches += 1
        self._refit()

    def _refit(self) -> None:
        mean_x = self._x / self._w
        mean_y = self._y / self._w
        self._mean_items, self._mean_s = mean_x, mean_y
        self._fit = None
        if self.batches < self.min_batches:
            return
        var_x = self._xx / self._w - mean_x * mean_x
        if var_x <= (0.05 * mean_x) ** 2:  # sizes barely vary: no slope to learn
            return
        per_item = (self._xy / self._w - mean_x * mean_y) / var_x
        if per_item <= 0:  # noise, or a model whose batches cost the same at any size
            return
        self._fit = (max(0.0, mean_y - per_item * mean_x), per_item)

    @property
    def known(self) -> bool:
        """True once a batch has finished: before that, nothing is estimated."""
        return self.batches > 0

    def batch_s(self, items: int) -> float:
        """Expected wall seconds of a batch of ``items`` (0 before any batch finished)."""
        if self._fit is None:  # the least a batch of this size can take, from the mean seen
            return self._mean_s * min(1.0, items / self._mean_items)
        overhead_s, per_item_s = self._fit
        return overhead_s + per_item_s * items


__all__ = ["ServiceTime"]
