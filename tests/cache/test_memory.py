"""The in-process store: TTLs on a fake clock, LRU and byte bounds under churn, invalidation."""

from __future__ import annotations

import random
from typing import Any

import pytest

from frugal.cache.memory import MemoryStore
from frugal.cache.store import (
    ENTRY_OVERHEAD_BYTES,
    CacheEntry,
    CacheStats,
    CacheStore,
    entry_size_bytes,
)
from tests.cache.conftest import cache_entry as entry
from tests.cache.conftest import fake_clock

HOUR_S = 3600.0


def stored_size(key: bytes, cached: CacheEntry) -> int:
    return entry_size_bytes(cached) + len(key)


def test_memory_store_is_a_cache_store() -> None:
    """MemoryStore meets the CacheStore protocol."""
    assert isinstance(MemoryStore(), CacheStore)


async def test_get_returns_what_put_stored() -> None:
    """A put entry comes back from get, and a key never put gives None."""
    store = MemoryStore()
    cached = entry({"label": 7, "probabilities": [0.1, 0.9]})
    await store.put(b"digits|a", cached, ttl_s=60)
    assert await store.get(b"digits|a") == cached
    assert await store.get(b"digits|b") is None


async def test_entry_expires_after_ttl() -> None:
    """An entry is served until its TTL passes, then dropped and counted as an expiration."""
    now, clock = fake_clock(1000.0)
    store = MemoryStore(clock=clock)
    await store.put(b"k", entry(), ttl_s=10)
    now[0] = 1009.999
    assert await store.get(b"k") is not None
    now[0] = 1010.0
    assert await store.get(b"k") is None
    assert store.stats() == CacheStats(entries=0, bytes=0, evictions=0, expirations=1)
    assert await store.get(b"k") is None
    assert store.stats().expirations == 1


async def test_put_renews_ttl() -> None:
    """Putting a key again replaces its entry and starts its TTL over."""
    now, clock = fake_clock()
    store = MemoryStore(clock=clock)
    await store.put(b"k", entry(1), ttl_s=10)
    now[0] = 8.0
    await store.put(b"k", entry(2), ttl_s=10)
    now[0] = 15.0
    got = await store.get(b"k")
    assert got is not None and got.value == 2
    assert store.stats().entries == 1


@pytest.mark.parametrize("ttl_s", [0.0, -1.0, float("nan")])
async def test_nonpositive_ttl_stores_nothing(ttl_s: float) -> None:
    """A TTL that is not positive stores nothing and drops what the key held."""
    store = MemoryStore()
    await store.put(b"k", entry(1), ttl_s=60)
    await store.put(b"k", entry(2), ttl_s=ttl_s)
    assert await store.get(b"k") is None
    assert store.stats() == CacheStats(entries=0, bytes=0, evictions=0, expirations=0)


async def test_lru_bound_holds_under_churn() -> None:
    """10,000 new keys into 100 slots: never more than 100, each overflow counted, recent kept."""
    rng = random.Random(20240601)
    store = MemoryStore(max_entries=100)
    hot = b"digits|hot"
    await store.put(hot, entry("hot"), ttl_s=HOUR_S)
    keys = [rng.randbytes(16) for _ in range(10_000)]
    for index, key in enumerate(keys):
        await store.put(key, entry(index), ttl_s=HOUR_S)
        assert store.stats().entries <= 100
        if index % 50 == 0:  # read often enough that it is never the least recently used
            assert await store.get(hot) is not None
    stats = store.stats()
    assert stats.entries == 100
    assert stats.evictions == 10_001 - 100
    assert await store.get(hot) is not None
    for index, key in enumerate(keys[-99:], start=len(keys) - 99):
        got = await store.get(key)
        assert got is not None and got.value == index
    assert await store.get(keys[-100]) is None


async def test_get_refreshes_recency() -> None:
    """A key read since it was put outlives one that was put later but not read."""
    store = MemoryStore(max_entries=2)
    await store.put(b"a", entry("a"), ttl_s=60)
    await store.put(b"b", entry("b"), ttl_s=60)
    assert await store.get(b"a") is not None
    await store.put(b"c", entry("c"), ttl_s=60)
    assert await store.get(b"b") is None
    assert await store.get(b"a") is not None
    assert await store.get(b"c") is not None
    assert store.stats().evictions == 1


async def test_byte_bound_evicts_least_recently_used() -> None:
    """Entries leave oldest first until the stored bytes fit under ``max_bytes`` again."""
    values = ["x" * 100, "y" * 100, "z" * 100]
    sizes = [stored_size(b"k%d" % i, entry(v)) for i, v in enumerate(values)]
    max_bytes = sizes[0] + sizes[1] + sizes[2] - 1
    store = MemoryStore(max_bytes=max_bytes)
    for i, value in enumerate(values):
        await store.put(b"k%d" % i, entry(value), ttl_s=60)
        assert store.stats().bytes <= max_bytes
    assert await store.get(b"k0") is None
    assert await store.get(b"k1") is not None
    assert await store.get(b"k2") is not None
    assert store.stats() == CacheStats(
        entries=2, bytes=sizes[1] + sizes[2], evictions=1, expirations=0
    )


async def test_byte_bound_holds_under_churn() -> None:
    """Values of random sizes never push the stored bytes past ``max_bytes``."""
    rng = random.Random(7)
    store = MemoryStore(max_bytes=20_000)
    for index in range(2_000):
        await store.put(b"k%d" % index, entry("v" * rng.randrange(0, 2_000)), ttl_s=60)
        assert store.stats().bytes <= 20_000
    assert store.stats().evictions > 0


async def test_oversize_entry_is_not_stored() -> None:
    """An entry bigger than ``max_bytes`` alone is refused, evicts nothing, and drops its key."""
    store = MemoryStore(max_bytes=1_000)
    await store.put(b"small", entry(1), ttl_s=60)
    await store.put(b"big", entry(1), ttl_s=60)
    await store.put(b"big", entry("x" * 1_000), ttl_s=60)
    assert await store.get(b"big") is None
    assert await store.get(b"small") is not None
    assert store.stats() == CacheStats(
        entries=1, bytes=stored_size(b"small", entry(1)), evictions=0, expirations=0
    )


async def test_expired_entry_pushed_out_counts_as_expiration() -> None:
    """An entry that expired unread and then falls off the LRU end is counted as expired."""
    now, clock = fake_clock()
    store = MemoryStore(max_entries=1, clock=clock)
    await store.put(b"a", entry(), ttl_s=5)
    now[0] = 6.0
    await store.put(b"b", entry(), ttl_s=5)
    await store.put(b"c", entry(), ttl_s=5)
    assert store.stats() == CacheStats(
        entries=1, bytes=stored_size(b"c", entry()), evictions=1, expirations=1
    )


async def fill_for_invalidation(store: MemoryStore) -> None:
    for index, (endpoint, model) in enumerate(
        [
            ("digits", "digits-small:1"),
            ("digits", "digits-large:1"),
            ("digits", "digits-small:2"),
            ("digits-canary", "digits-small:2"),
            ("text", "minilm:1"),
        ]
    ):
        await store.put(b"%d" % index, entry(index, endpoint=endpoint, model=model), ttl_s=60)


async def test_invalidate_by_endpoint() -> None:
    """Invalidating an endpoint removes its entries only, and says how many."""
    store = MemoryStore()
    await fill_for_invalidation(store)
    assert await store.invalidate(endpoint="digits") == 3
    assert [await store.get(b"%d" % i) is not None for i in range(5)] == [0, 0, 0, 1, 1]
    assert await store.invalidate(endpoint="digits") == 0


async def test_invalidate_by_model_version() -> None:
    """Invalidating a model version removes what it computed on every endpoint, no more."""
    store = MemoryStore()
    await fill_for_invalidation(store)
    assert await store.invalidate(model="digits-small:2") == 2
    assert [await store.get(b"%d" % i) is not None for i in range(5)] == [1, 1, 0, 0, 1]


async def test_invalidate_by_endpoint_and_model() -> None:
    """Given both, invalidation removes entries that match both."""
    store = MemoryStore()
    await fill_for_invalidation(store)
    assert await store.invalidate(endpoint="digits", model="digits-small:2") == 1
    assert [await store.get(b"%d" % i) is not None for i in range(5)] == [1, 1, 0, 1, 1]


async def test_invalidate_all() -> None:
    """Invalidating with no filter empties the store without counting evictions."""
    store = MemoryStore()
    await fill_for_invalidation(store)
    assert await store.invalidate() == 5
    assert store.stats() == CacheStats(entries=0, bytes=0, evictions=0, expirations=0)


async def test_stats_track_bytes_through_replace_and_invalidate() -> None:
    """Stored bytes are the sum of the live entries' sizes after puts, replaces and removals."""
    store = MemoryStore()
    small, large = entry([1, 2]), entry(list(range(100)))
    await store.put(b"a", small, ttl_s=60)
    await store.put(b"b", small, ttl_s=60)
    assert store.stats().bytes == 2 * stored_size(b"a", small)
    await store.put(b"a", large, ttl_s=60)
    assert store.stats() == CacheStats(
        entries=2,
        bytes=stored_size(b"a", large) + stored_size(b"b", small),
        evictions=0,
        expirations=0,
    )
    await store.invalidate(endpoint="digits")
    assert store.stats().bytes == 0


def test_entry_size_grows_with_the_value() -> None:
    """An entry's estimated size is its value's JSON length plus a fixed overhead."""
    assert entry_size_bytes(entry(1)) == 1 + ENTRY_OVERHEAD_BYTES
    assert entry_size_bytes(entry("x" * 1_000)) == 1_002 + ENTRY_OVERHEAD_BYTES


@pytest.mark.parametrize("bounds", [{"max_entries": 0}, {"max_bytes": 0}])
def test_bounds_must_be_positive(bounds: dict[str, Any]) -> None:
    """A store that could hold nothing is refused when built."""
    with pytest.raises(ValueError, match="at least 1"):
        MemoryStore(**bounds)
