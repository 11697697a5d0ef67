"""The in-process cache store: bounded by entries and bytes, least recently used goes first.

Every method runs on the event loop and never awaits, so no other task can run between its
steps: single-threaded asyncio is the lock. Lookups, puts and evictions are O(1) (an
``OrderedDict`` keeps recency: a hit moves to the end, eviction pops the front). Expired entries
are not swept: one leaves when it is read, when the bounds evict it, or when it is invalidated,
so ``stats().entries`` may count some that have expired but not yet been touched.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from frugal.cache.store import CacheEntry, CacheStats, entry_size_bytes


class _Slot(NamedTuple):
    entry: CacheEntry
    expires_at: float  # on the store's clock
    size_bytes: int  # entry estimate plus the key


class MemoryStore:
    """A CacheStore in this process's memory; ``clock`` is injectable so tests need no sleeps."""

    def __init__(
        self,
        max_entries: int = 100_000,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1 or None, got {max_bytes}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[bytes, _Slot] = OrderedDict()
        self._bytes = 0
        self._evictions = 0
        self._expirations = 0

    async def get(self, key: bytes) -> CacheEntry | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        if self._clock() >= slot.expires_at:
            self._remove(key)
            self._expirations += 1
            return None
        self._slots.move_to_end(key)
        return slot.entry

    async def put(self, key: bytes, entry: CacheEntry, ttl_s: float) -> None:
        # A put replaces: whatever the key held is stale now, even if the new entry is not kept.
        if key in self._slots:
            self._remove(key)
        if not ttl_s > 0:  # also refuses NaN
            return
        size = entry_size_bytes(entry) + len(key)
        if self.max_bytes is not None and size > self.max_bytes:
            return  # storing it would evict everything else and still not fit
        self._slots[key] = _Slot(entry, self._clock() + ttl_s, size)
        self._bytes += size
        self._evict_to_bounds()

    async def invalidate(self, *, endpoint: str | None = None, model: str | None = None) -> int:
        # A scan: O(entries), fine in memory and rare (a deploy, an operator's command).
        if endpoint is None and model is None:
            removed = len(self._slots)
            self._slots.clear()
            self._bytes = 0
            return removed
        doomed = [
            key
            for key, slot in self._slots.items()
            if (endpoint is None or slot.entry.endpoint == endpoint)
            and (model is None or slot.entry.model == model)
        ]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self._slots),
            bytes=self._bytes,
            evictions=self._evictions,
            expirations=self._expirations,
        )

    def _evict_to_bounds(self) -> None:
        now = self._clock()
        while len(self._slots) > self.max_entries or (
            self.max_bytes is not None and self._bytes > self.max_bytes
        ):
            _, slot = self._slots.popitem(last=False)
            self._bytes -= slot.size_bytes
            # One that had expired would never have been served: that is an expiration.
            if now >= slot.expires_at:
                self._expirations += 1
            else:
                self._evictions += 1

    def _remove(self, key: bytes) -> None:
        self._bytes -= self._slots.pop(key).size_bytes


__all__ = ["MemoryStore"]
