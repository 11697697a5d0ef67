"""A persistent cache in one SQLite file, so a restart keeps its warm entries.

Every SQLite call runs on one dedicated thread (the connection lives there), never on the
event loop. Eviction past ``max_entries`` drops the least recently *written* entries: counting
reads would make every hit a disk write. Expired rows are deleted when read and swept on put.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from frugal.cache.store import CacheEntry, CacheStats, decode_entry, encode_entry
from frugal.sqlite_locks import use_wal

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  key BLOB PRIMARY KEY, value BLOB NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL,
  expires REAL NOT NULL, written REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_written ON entries (written);
"""


class DiskStore:
    def __init__(
        self, path: Path, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._clock = clock  # wall clock: expiry must survive a restart
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="frugal-disk-cache")
        self._db: sqlite3.Connection | None = None
        self._evictions = self._expirations = 0
        self._entries = 0
        self._thread.submit(self._open).result()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10.0)
        use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._entries = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        self._db = db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)

    async def get(self, key: bytes) -> CacheEntry | None:
        now = self._clock()

        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value, expires FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if row[1] <= now:
                with db:
                    db.execute("DELETE FROM entries WHERE key = ?", (key,))
                self._entries -= 1
                self._expirations += 1
                return None
            value: bytes = row[0]
            return value

        raw = await self._run(read)
        if raw is None:
            return None
        try:
            return decode_entry(raw)
        except ValueError:  # not written by this version of frugal: a miss
            return None

    async def put(self, key: bytes, entry: CacheEntry, ttl_s: float) -> None:
        if not ttl_s > 0:
            return
        now = self._clock()
        raw = encode_entry(entry)

        def write(db: sqlite3.Connection) -> None:
            with db:
                replaced = db.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount
                db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                    (key, raw, entry.endpoint, entry.model, now + ttl_s, now),
                )
                self._entries += 1 - replaced
                if self._entries > self.max_entries:
                    expired = db.execute("DELETE FROM entries WHERE expires <= ?", (now,)).rowcount
                    self._expirations += expired
                    self._entries -= expired
                    over = self._entries - self.max_entries
                    if over > 0:
                        db.execute(
                            "DELETE FROM entries WHERE key IN "
                            "(SELECT key FROM entries ORDER BY written LIMIT ?)",
                            (over,),
                        )
                        self._evictions += over
                        self._entries -= over

        await self._run(write)

    async def invalidate(self, *, endpoint: str | None = None, model: str | None = None) -> int:
        where, args = [], []
        if endpoint is not None:
            where.append("endpoint = ?")
            args.append(endpoint)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        sql = "DELETE FROM entries" + (" WHERE " + " AND ".join(where) if where else "")

        def delete(db: sqlite3.Connection) -> int:
            with db:
                count: int = db.execute(sql, args).rowcount
            self._entries -= count
            return count

        return await self._run(delete)

    def stats(self) -> CacheStats:
        return CacheStats(
            entries=self._entries,
            bytes=self.path.stat().st_size if self.path.exists() else 0,
            evictions=self._evictions,
            expirations=self._expirations,
        )

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            await self._run(shut)
            self._db = None
        self._thread.shutdown(wait=True)


__all__ = ["DiskStore"]
