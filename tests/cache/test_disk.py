"""The disk store: answers survive a restart, with TTL and a bound on entries."""

from __future__ import annotations

from pathlib import Path

from frugal.cache.disk import DiskStore
from frugal.cache.store import CacheEntry


def entry(value: object, model: str = "m:1", endpoint: str = "e") -> CacheEntry:
    return CacheEntry(value, 0.9, model, 1e-6, 1000.0, endpoint, compute_s=0.002)


async def test_entries_survive_reopening(tmp_path: Path) -> None:
    """What one store wrote, a new store on the same file (a restarted server) reads."""
    store = DiskStore(tmp_path / "c.db")
    await store.put(b"e|k1", entry({"label": 3, "scores": [0.1, 0.9]}), 60)
    await store.close()
    again = DiskStore(tmp_path / "c.db")
    assert await again.get(b"e|k1") == entry({"label": 3, "scores": [0.1, 0.9]})
    assert again.stats().entries == 1
    await again.close()


async def test_expired_entries_are_misses(tmp_path: Path) -> None:
    """Past its TTL (by the wall clock) an entry is a miss and is deleted."""
    now = [1000.0]
    store = DiskStore(tmp_path / "c.db", clock=lambda: now[0])
    await store.put(b"e|k", entry(1), 10)
    now[0] += 9
    assert await store.get(b"e|k") is not None
    now[0] += 2
    assert await store.get(b"e|k") is None
    assert store.stats().expirations == 1 and store.stats().entries == 0
    await store.close()


async def test_bound_evicts_the_oldest_written(tmp_path: Path) -> None:
    """Past max_entries the least recently written entries go."""
    now = [1000.0]
    store = DiskStore(tmp_path / "c.db", max_entries=3, clock=lambda: now[0])
    for i in range(5):
        now[0] += 1
        await store.put(f"e|{i}".encode(), entry(i), 60)
    assert store.stats().entries == 3 and store.stats().evictions == 2
    assert [await store.get(f"e|{i}".encode()) is not None for i in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
    await store.close()


async def test_invalidate_by_endpoint_and_model(tmp_path: Path) -> None:
    """Invalidation removes what matches and counts it."""
    store = DiskStore(tmp_path / "c.db")
    await store.put(b"a|1", entry(1, model="m:1", endpoint="a"), 60)
    await store.put(b"a|2", entry(2, model="m:2", endpoint="a"), 60)
    await store.put(b"b|1", entry(3, model="m:1", endpoint="b"), 60)
    assert await store.invalidate(model="m:1", endpoint="a") == 1
    assert await store.invalidate(endpoint="b") == 1
    assert await store.invalidate() == 1
    assert store.stats().entries == 0
    await store.close()
