"""The audit log: who changed what, in a hash chain that shows any edit or deletion.

Each row stores the hash of the row before it and its own hash over (seq, ts, actor, action,
target, detail, prev_hash). Editing a row breaks its own hash; deleting one breaks the link of
the next (and leaves a gap in ``seq``). Deleting the newest rows leaves a shorter, valid chain:
only a copy of the head hash kept elsewhere shows that, so ``frugal audit verify`` prints it.
The table lives in the ledger's SQLite file; appends take the write lock (BEGIN IMMEDIATE), so
the server and the CLI can append at the same time and the chain stays one chain.
"""

from __future__ import annotations

import getpass
import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from frugal.errors import ConfigError

GENESIS = "0" * 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: float
    actor: str  # a key's name, "cli:<os user>", "server" or "loopback"
    action: str  # e.g. key.create, key.revoke, model.load, cache.invalidate
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Verdict:
    rows: int
    head: str  # the last row's hash: keep a copy elsewhere to detect truncation
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def row_hash(seq: int, ts: float, actor: str, action: str, target: str, detail: str,
             prev_hash: str) -> str:  # fmt: skip
    payload = orjson.dumps([seq, repr(ts), actor, action, target, detail, prev_hash])
    return hashlib.sha256(payload).hexdigest()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a frugal ledger: {exc}", file=str(self.path)) from None
        return db

    def append(self, actor: str, action: str, target: str, **detail: Any) -> AuditEntry:
        """Blocking (a short write); call it from a thread on the serving path."""
        text = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            ts = time.time()
            digest = row_hash(seq, ts, actor, action, target, text, prev)
            db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)",
                       (seq, ts, actor, action, target, text, prev, digest))  # fmt: skip
            db.execute("COMMIT")
        finally:
            db.close()
        return AuditEntry(seq, ts, actor, action, target, detail, prev, digest)

    def entries(self, *, since: float | None = None) -> list[AuditEntry]:
        db = self._connect()
        try:
            rows = db.execute(
                "SELECT * FROM audit WHERE ts >= ? ORDER BY seq", (since or 0.0,)
            ).fetchall()
        finally:
            db.close()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _detail(r[5]), r[6], r[7]) for r in rows]

    def verify(self) -> Verdict:
        """Walk the chain from the first row; the first row that does not fit is named."""
        db = self._connect()
        try:
            rows = db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        finally:
            db.close()
        prev, expected_seq = GENESIS, 1
        for seq, ts, actor, action, target, detail, prev_hash, digest in rows:
            if seq != expected_seq:
                missing = f"row {expected_seq}" if seq == expected_seq + 1 else (
                    f"rows {expected_seq}-{seq - 1}")  # fmt: skip
                return Verdict(len(rows), prev, seq, f"{missing} deleted before row {seq}")
            if prev_hash != prev:
                return Verdict(len(rows), prev, seq, "does not link to the row before it")
            if row_hash(seq, ts, actor, action, target, detail, prev_hash) != digest:
                return Verdict(len(rows), prev, seq, "was edited: its hash does not match")
            prev, expected_seq = digest, seq + 1
        return Verdict(len(rows), prev)


def _detail(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"unreadable": text}
    return value if isinstance(value, dict) else {"value": value}


__all__ = ["GENESIS", "AuditEntry", "AuditLog", "Verdict", "cli_actor", "row_hash"]
