"""The CacheStore seam: where the cache stage keeps answers, and what one answer records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

# What an entry costs beyond its value's bytes, roughly, in CPython: the CacheEntry object with
# its slots, its float objects, the store's bookkeeping (dict slot, LRU link, expiry) and the
# key's bytes header. Strings such as ``model`` and ``endpoint`` are shared between entries, so
# they are not counted per entry.
ENTRY_OVERHEAD_BYTES = 200

_SIZE_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached answer: what a model returned for one item, and what computing it cost."""

    value: Any  # the prediction value (JSON-able: numbers, str, lists, dicts)
    confidence: float | None
    model: str  # name:version that computed it
    cost_usd: float  # what computing it cost (a hit records this as saved)
    created: float  # unix seconds
    endpoint: str  # for invalidation by endpoint
    compute_s: float = 0.0  # busy seconds of the batch that computed it (XFetch's delta)


_FIELD_COUNT = 7  # the CacheEntry fields, in declaration order


def encode_entry(entry: CacheEntry) -> bytes:
    """Compact bytes for stores outside this process (disk, Redis): a JSON list of fields."""
    fields = [
        entry.value,
        entry.confidence,
        entry.model,
        entry.cost_usd,
        entry.created,
        entry.endpoint,
        entry.compute_s,
    ]
    return orjson.dumps(fields, option=_SIZE_OPTIONS)


def decode_entry(raw: bytes | str) -> CacheEntry:
    """The entry ``encode_entry`` wrote; raises ValueError for anything else."""
    fields = orjson.loads(raw)
    if not isinstance(fields, list) or len(fields) != _FIELD_COUNT:
        raise ValueError(f"expected a list of {_FIELD_COUNT} fields")
    value, confidence, model, cost_usd, created, endpoint, compute_s = fields
    if not (isinstance(model, str) and isinstance(endpoint, str)):
        raise ValueError("model and endpoint must be strings")
    if not (confidence is None or _is_number(confidence)):
        raise ValueError("confidence must be a number or null")
    if not (_is_number(cost_usd) and _is_number(created) and _is_number(compute_s)):
        raise ValueError("cost_usd, created and compute_s must be numbers")
    return CacheEntry(
        value=value,
        confidence=None if confidence is None else float(confidence),
        model=model,
        cost_usd=float(cost_usd),
        created=float(created),
        endpoint=endpoint,
        compute_s=float(compute_s),
    )


def _is_number(x: Any) -> bool:
    return type(x) is int or type(x) is float  # bool is an int, but not a number here


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A store's size and churn, for metrics: expirations are TTLs, evictions are bounds."""

    entries: int
    bytes: int
    evictions: int
    expirations: int
    errors: int = 0  # operations that failed (a remote store down or slow); the cache failed open


@runtime_checkable
class CacheStore(Protocol):
    """Called by the cache stage on the event loop; a store that does I/O must not block it.

    ``get`` returns None for a missing or expired key. ``put`` replaces what the key held; the
    entry lives ``ttl_s`` seconds at most, and less if the store's bounds evict it first.
    """

    async def get(self, key: bytes) -> CacheEntry | None: ...

    async def put(self, key: bytes, entry: CacheEntry, ttl_s: float) -> None: ...

    async def invalidate(self, *, endpoint: str | None = None, model: str | None = None) -> int:
        """Remove the entries of ``endpoint`` and/or computed by ``model`` (a name:version).

        With both None, remove every entry. Returns how many were removed.
        """
        ...

    def stats(self) -> CacheStats: ...


def entry_size_bytes(entry: CacheEntry) -> int:
    """An estimate of the memory an entry holds, for a store's byte bound.

    An estimate on purpose: ``sys.getsizeof`` is shallow, and a deep walk of the value costs a
    traversal per put and is still inexact (shared objects, allocator slack). The value's JSON
    length tracks its real size, is what a Redis store would hold, and orjson computes it in
    microseconds; a fixed overhead stands for the rest of the entry.
    """
    return len(orjson.dumps(entry.value, option=_SIZE_OPTIONS)) + ENTRY_OVERHEAD_BYTES


__all__ = [
    "ENTRY_OVERHEAD_BYTES",
    "CacheEntry",
    "CacheStats",
    "CacheStore",
    "decode_entry",
    "encode_entry",
    "entry_size_bytes",
]
