"""What frugal's SQLite files do when another connection holds the lock.

Every SQLite file frugal writes (the ledger with its audit chain, the keys database, the disk
cache, the split weights) is opened with a busy timeout, so a write waits for another process's
write. One statement does not: ``PRAGMA journal_mode=WAL`` answers "database is locked" at once,
without waiting, when another connection holds a write lock while it switches (the switch needs
the file to itself). The mode is stored in the file, so only the first opens of a new file race:
``--workers`` processes starting on a fresh ledger, or the server and ``frugal keys`` appending
to a new audit chain at once. ``use_wal`` waits that out as the timeout would have.
"""

from __future__ import annotations

import sqlite3
import time

WAL_RETRY_S = 0.01  # between tries of the switch; the lock it waits for is one short write


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock: worth waiting for, unlike every other failure."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def use_wal(db: sqlite3.Connection, timeout_s: float = 10.0) -> None:
    """Switch ``db``'s file to WAL mode, retrying for up to ``timeout_s`` while another
    connection holds the lock; any other failure (not a database, read-only) raises at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY_S)


__all__ = ["WAL_RETRY_S", "is_busy", "use_wal"]
