"""Split weights changed at run time, kept in the ledger's SQLite file.

Why a table and not memory: with ``--workers N`` an admin call or a rollback reaches one process,
and every process must route with the same weights; a restart must not undo a promotion. Each
row also keeps the weights the config had when the change was made: once the config's split
changes (someone edited frugal.yaml), the config wins and the stored override is ignored.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from frugal.sqlite_locks import use_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS route_weights (
  endpoint TEXT PRIMARY KEY, weights TEXT NOT NULL, configured TEXT NOT NULL,
  seq INTEGER NOT NULL, ts REAL NOT NULL, actor TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredWeights:
    endpoint: str
    weights: dict[str, float]
    configured: dict[str, float]  # the config's weights that this override applies to
    seq: int


class WeightStore:
    """Blocking SQLite calls: run them in a worker thread from the serving path."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used from worker threads in turn

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False,
                                 isolation_level=None)  # fmt: skip
            use_wal(db)
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def save(
        self, endpoint: str, weights: dict[str, float], configured: dict[str, float], actor: str
    ) -> int:
        with self._lock:
            return self._save(endpoint, weights, configured, actor)

    def _save(
        self, endpoint: str, weights: dict[str, float], configured: dict[str, float], actor: str
    ) -> int:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            seq = int(
                db.execute("SELECT coalesce(max(seq), 0) + 1 FROM route_weights").fetchone()[0]
            )
            db.execute(
                "INSERT OR REPLACE INTO route_weights VALUES (?, ?, ?, ?, ?, ?)",
                (endpoint, _dumps(weights), _dumps(configured), seq, time.time(), actor),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return seq

    def since(self, seq: int) -> list[StoredWeights]:
        """Rows changed after ``seq`` (0: all), oldest change first."""
        with self._lock:
            rows = self._connect().execute(
                "SELECT endpoint, weights, configured, seq FROM route_weights WHERE seq > ? "
                "ORDER BY seq", (seq,),
            ).fetchall()  # fmt: skip
        return [StoredWeights(e, orjson.loads(w), orjson.loads(c), int(s)) for e, w, c, s in rows]

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _dumps(weights: dict[str, float]) -> str:
    return orjson.dumps(weights, option=orjson.OPT_SORT_KEYS).decode()


__all__ = ["StoredWeights", "WeightStore"]
