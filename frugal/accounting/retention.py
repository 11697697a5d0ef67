"""Deleting ledger data: by age (retention) and by key name (a person's deletion request).

What goes: request rows, batch rows and finished runs (stopped, or killed: silent for an hour)
older than the cutoff, and captured payloads older than the cutoff or past their own expiry. By
key: every request row and payload of that key, whatever its age. The audit log is never pruned
here: it is the record that these deletions happened (each prune appends an entry naming what it
removed, never a payload).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from frugal.accounting.ledger_schema import SqlReader
from frugal.accounting.ledger_store import open_reader, reader_errors
from frugal.config import is_postgres_url
from frugal.errors import ConfigError

# A run whose heartbeat (every few seconds) is this old was killed: retention may treat its last
# heartbeat as its end. Far longer than any heartbeat interval (ledger.heartbeat_s <= 300), so
# a live run is never pruned.
SILENT_S = 3600.0


@dataclass(frozen=True, slots=True)
class Pruned:
    requests: int = 0
    batches: int = 0
    runs: int = 0
    payloads: int = 0

    @property
    def total(self) -> int:
        return self.requests + self.batches + self.runs + self.payloads


def prune(
    path: Path | str,
    *,
    older_than_s: float | None = None,
    key: str | None = None,
    now: float | None = None,
    password_env: str | None = None,
) -> Pruned:
    """Delete what the arguments select, in one transaction; expired payloads always go.

    ``path``: the SQLite file, or a postgresql:// URL (the same statements run there)."""
    postgres = is_postgres_url(path)
    if not postgres and not Path(path).exists():
        raise ConfigError("no ledger here yet", file=str(path))
    now = time.time() if now is None else now
    where = {"field": "ledger.url"} if postgres else {"file": str(path)}
    try:
        with open_reader(path, password_env=password_env) as db:
            return _prune(db, older_than_s, key, now)
    except reader_errors() as exc:
        raise ConfigError(f"not a frugal ledger: {exc}", **where) from None


def _prune(db: SqlReader, older_than_s: float | None, key: str | None, now: float) -> Pruned:
    requests = batches = runs = 0
    payloads = db.execute("DELETE FROM payloads WHERE expires < ?", (now,)).rowcount
    if older_than_s is not None:
        cutoff = now - older_than_s
        requests += db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
        batches += db.execute("DELETE FROM batches WHERE ts < ?", (cutoff,)).rowcount
        # A killed run never stops; once silent for SILENT_S it is dead, and goes by its last
        # heartbeat like a stopped run by its end.
        runs += db.execute(
            "DELETE FROM runs WHERE COALESCE(stopped, heartbeat) < ? AND (stopped IS NOT "
            "NULL OR heartbeat < ?)",
            (cutoff, now - SILENT_S),
        ).rowcount
        payloads += db.execute("DELETE FROM payloads WHERE ts < ?", (cutoff,)).rowcount
    if key is not None:
        requests += db.execute("DELETE FROM requests WHERE key_name = ?", (key,)).rowcount
        payloads += db.execute("DELETE FROM payloads WHERE key_name = ?", (key,)).rowcount
    return Pruned(requests, batches, runs, payloads)


__all__ = ["Pruned", "prune"]
