"""XFetch early expiry: hot entries are refreshed before they expire, never long before."""

from __future__ import annotations

import math
from typing import Any

from frugal.cache import CacheStage, MemoryStore
from frugal.config import CacheConfig, EarlyExpiryConfig
from frugal.types import BatchStats, ItemOutcome, Prediction

BATCH = BatchStats("m:1", 1, "drain", 0.0, busy_s=0.5, cost_per_item_usd=1e-6, queue_s=(0.0,),
                   failed=0)  # fmt: skip


async def test_refresh_probability_rises_toward_expiry() -> None:
    """Far from expiry an entry is served; near it, XFetch recomputes it."""
    now = [1000.0]
    draws = [0.5]  # -log(1 - 0.5) = 0.69: refresh once within 0.5 s x 0.69 of expiry
    calls: list[Any] = []
    config = CacheConfig(ttl_s=60, early_expiry=EarlyExpiryConfig(beta=1.0))
    stage = CacheStage("e", config, MemoryStore(clock=lambda: now[0]), ["m:1"],
                       mean_item_cost=lambda m: 0.0, clock=lambda: now[0],
                       rand=lambda: draws[0])  # fmt: skip

    async def compute(items: list[Any]) -> list[ItemOutcome]:
        calls.append(items)
        return [ItemOutcome(Prediction(x), None, 0.0, BATCH, "m:1") for x in items]

    assert (await stage.serve(["x"], "global", compute)).label == "miss"
    now[0] += 59.0  # 1 s before expiry; gap 0.35 s: not yet
    assert (await stage.serve(["x"], "global", compute)).label == "hit"
    now[0] += 0.7  # 0.3 s before expiry, inside the gap: refresh
    assert (await stage.serve(["x"], "global", compute)).label == "miss"
    assert stage.refreshed == 1 and len(calls) == 2
    gap = -0.5 * math.log(1 - 0.5)
    assert 0.3 < gap < 1.0
