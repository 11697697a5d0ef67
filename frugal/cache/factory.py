"""Build the store an endpoint's cache config names; remote stores import only when used."""

from __future__ import annotations

from pathlib import Path

from frugal.cache.memory import MemoryStore
from frugal.cache.store import CacheStore
from frugal.config import CacheConfig
from frugal.errors import ConfigError


def build_store(endpoint: str, config: CacheConfig, *, data_dir: Path) -> CacheStore:
    """``data_dir``: where a disk store goes when its config names no path (beside the ledger)."""
    if config.store == "memory":
        return MemoryStore(max_entries=config.max_entries, max_bytes=config.max_bytes)
    if config.store == "disk":
        from frugal.cache.disk import DiskStore

        path = config.path or data_dir / f"frugal-cache-{endpoint}.db"
        return DiskStore(path, max_entries=config.max_entries)
    try:
        from frugal.cache.redis import RedisStore
    except ImportError as exc:
        raise ConfigError(
            "store redis needs the redis package",
            field=f"endpoints[{endpoint}].cache.store",
            hint="pip install 'frugal[redis]'",
        ) from exc
    return RedisStore(
        config.redis_url, namespace=f"frugal:{endpoint}", timeout_ms=config.timeout_ms
    )


__all__ = ["build_store"]
