"""Priority by caller tier in a model's queue (``server.priority``; docs/priority.md).

The batcher's queue stays one deque in arrival order; priority only changes which waiting items
the next batch takes and how much of the queue a new item counts as ahead of it:

- a batch takes first the items that have waited past ``starvation_ms`` (oldest first), then
  the rest by tier, highest first, in arrival order within a tier: so a lower tier is never
  held past the bound however much higher-tier work keeps arriving;
- expected-wait admission counts, for a new item, only the waiting items that will go before
  it (its tier and above, and any starved ones): under overload the lowest tier sees the whole
  queue and is refused first, while a higher tier is still admitted;
- a lower tier's expected wait is stretched by the share of recent work that went to higher
  tiers (``stretch``): those keep arriving and pass it while it waits, so without it a lower
  tier is admitted on a wait it will not get, and answered 504 (or starves, and then delays the
  higher tiers) instead of refused at once with 503.

Without a ``priority`` section none of this runs: the batcher keeps its FIFO path untouched.
A tier not configured (or none) is served as the lowest configured tier.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from frugal.config import PriorityConfig
from frugal.observability.buckets import LATENCY_BUCKETS


class Waiting(Protocol):
    """What priority reads of a queued item (the batcher's ``_Pending``)."""

    @property
    def rank(self) -> int: ...  # 0 is the highest tier

    @property
    def enqueued(self) -> float: ...  # monotonic

    @property
    def size(self) -> int: ...


P = TypeVar("P", bound=Waiting)
SERVED_DECAY = 0.995  # per item served: the tiers' shares follow the last few hundred items


class TierOrder:
    """The configured tiers, highest first: a caller's tier to its rank (0 = highest)."""

    def __init__(self, config: PriorityConfig) -> None:
        self.tiers = tuple(config.tiers)
        self.lowest = len(self.tiers) - 1
        self.starvation_s = config.starvation_ms / 1000
        self._ranks = {tier: rank for rank, tier in enumerate(self.tiers)}

    def rank(self, tier: str | None) -> int:
        """Its rank; a tier not configured, or none, is the lowest configured one."""
        if tier is None:
            return self.lowest
        return self._ranks.get(tier, self.lowest)


class TierQueue:
    """One batcher's priority: which items go next, what is ahead of a new one, and counts
    by tier for ``/metrics`` (refusals, queue wait), kept as plain numbers read when scraped."""

    def __init__(self, order: TierOrder) -> None:
        self.order = order
        tiers = len(order.tiers)
        self.refused: list[dict[str, int]] = [{} for _ in range(tiers)]
        # A histogram of queue waits per tier: counts per LATENCY_BUCKETS bound (+Inf last).
        self.wait_buckets = [[0] * (len(LATENCY_BUCKETS) + 1) for _ in range(tiers)]
        self.wait_sum_s = [0.0] * tiers
        self._served = [0.0] * tiers  # items served by tier, decayed per item: recent shares

    def stretch(self, rank: int) -> float:
        """How much longer than its queue says an item of ``rank`` waits: 1 / the share of
        recent capacity that went to its tier and below (at most 10x)."""
        if rank == 0:
            return 1.0
        total = sum(self._served)
        if total <= 0:
            return 1.0
        higher = sum(self._served[:rank]) / total
        return 1 / max(0.1, 1 - higher)

    def ahead(self, queue: Sequence[Waiting], rank: int, now: float) -> int:
        """How many waiting items go before a new item of ``rank``: O(queue), only on the
        admission path, which runs only while work is ahead."""
        if rank >= self.order.lowest:
            return len(queue)
        starved_before = now - self.order.starvation_s
        return sum(1 for p in queue if p.rank <= rank or p.enqueued <= starved_before)

    def take(
        self,
        queue: Sequence[P],
        limit: int,
        now: float,
        window: Callable[[list[int]], list[int]] | None = None,
    ) -> tuple[list[P], list[P]]:
        """(the next batch, what stays queued in arrival order).

        ``window``, for a sized model: given the candidates' sizes (the first in priority order
        first), the indices of a batch of similar sizes that includes index 0. Its candidates
        are the items that would go before or with the first one: starved items, and items of
        its tier and above, so a lower tier never rides along ahead of a waiting higher one.
        """
        starved_before = now - self.order.starvation_s
        ordered = _priority_order(queue, starved_before, len(self.order.tiers))
        if window is None:
            chosen = ordered[:limit]
        else:
            first = queue[ordered[0]]
            candidates = [
                i for i in ordered
                if queue[i].rank <= first.rank or queue[i].enqueued <= starved_before
            ]  # fmt: skip
            picked = window([queue[i].size for i in candidates])
            chosen = [candidates[j] for j in picked]
        taken = set(chosen)
        batch = [queue[i] for i in chosen]
        rest = [p for i, p in enumerate(queue) if i not in taken]
        return batch, rest

    def count_refusal(self, rank: int, reason: str) -> None:
        counts = self.refused[rank]
        counts[reason] = counts.get(reason, 0) + 1

    def observe_waits(self, batch: Sequence[Waiting], waits_s: Sequence[float]) -> None:
        """Queue wait by tier (a bucket increment per item, no metric lookups), and the tiers'
        recent shares of the work served."""
        decay = SERVED_DECAY ** len(batch)
        served = self._served
        for rank in range(len(served)):
            served[rank] *= decay
        for p, wait_s in zip(batch, waits_s, strict=True):
            served[p.rank] += 1
            self.wait_buckets[p.rank][bisect.bisect_left(LATENCY_BUCKETS, wait_s)] += 1
            self.wait_sum_s[p.rank] += wait_s


def _priority_order(queue: Sequence[Waiting], starved_before: float, tiers: int) -> list[int]:
    """Indices of ``queue`` (arrival order) in serving order: starved items oldest first,
    then by rank, arrival order within a rank. O(queue): one pass into a bucket per tier."""
    starved: list[int] = []
    by_rank: list[list[int]] = [[] for _ in range(tiers)]
    for i, p in enumerate(queue):
        if p.enqueued <= starved_before:
            starved.append(i)
        else:
            by_rank[p.rank].append(i)
    for bucket in by_rank:
        starved.extend(bucket)
    return starved


__all__ = ["TierOrder", "TierQueue"]
