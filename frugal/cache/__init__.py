"""Caching: keys, stores behind the CacheStore seam, and the cache stage of an endpoint."""

from frugal.cache.factory import build_store
from frugal.cache.keys import canonical_bytes, item_key
from frugal.cache.memory import MemoryStore
from frugal.cache.semantic import SemanticIndex
from frugal.cache.stage import CacheResult, CacheStage
from frugal.cache.store import CacheEntry, CacheStats, CacheStore

__all__ = [
    "CacheEntry",
    "CacheResult",
    "CacheStage",
    "CacheStats",
    "CacheStore",
    "MemoryStore",
    "SemanticIndex",
    "build_store",
    "canonical_bytes",
    "item_key",
]
