"""The ledger file's schema, its migrations, and the connections and inserts the writer uses.

One SQLite file in WAL mode holds every table; ``ensure_schema`` creates them and adds columns
an older file lacks, so a ledger written by any earlier frugal stays readable and writable.
"""

from __future__ import annotations

import sqlite3
from itertools import chain
from pathlib import Path
from typing import Any, Protocol

from frugal.sqlite_locks import use_wal


class SqlReader(Protocol):
    """What the ledger's readers (report, billing, budgets, retention) run their SQL on: a
    sqlite3 connection, or a PostgreSQL one behind the same call (ledger_postgres_schema.py).
    Their SQL is written once, with ``?`` marks, in the dialect both share."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  ts REAL NOT NULL, run_id TEXT NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
  model TEXT NOT NULL, version TEXT NOT NULL, items INTEGER NOT NULL, batch_size REAL NOT NULL,
  queue_ms REAL NOT NULL, compute_ms REAL NOT NULL, latency_ms REAL NOT NULL,
  cost_usd REAL NOT NULL, status INTEGER NOT NULL, cache TEXT NOT NULL DEFAULT 'bypass',
  saved_usd REAL NOT NULL DEFAULT 0, key_name TEXT NOT NULL DEFAULT '',
  tokens INTEGER NOT NULL DEFAULT 0, route TEXT NOT NULL DEFAULT '',
  degraded INTEGER NOT NULL DEFAULT 0, shadow INTEGER NOT NULL DEFAULT 0,
  model_usd REAL NOT NULL DEFAULT 0, overhead_usd REAL NOT NULL DEFAULT 0,
  tier_costs TEXT NOT NULL DEFAULT '', tier TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_key ON requests (key_name, ts);
CREATE TABLE IF NOT EXISTS payloads (
  ts REAL NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL, key_name TEXT NOT NULL,
  request TEXT NOT NULL, response TEXT NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS payloads_expires ON payloads (expires);
CREATE TABLE IF NOT EXISTS batches (
  ts REAL NOT NULL, run_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
  size INTEGER NOT NULL, reason TEXT NOT NULL, busy_s REAL NOT NULL, cost_usd REAL NOT NULL,
  queue_ms_mean REAL NOT NULL, queue_ms_max REAL NOT NULL, failed INTEGER NOT NULL,
  padded_size INTEGER, padding_waste REAL
);
CREATE INDEX IF NOT EXISTS batches_ts ON batches (ts);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started REAL NOT NULL, stopped REAL, instance TEXT NOT NULL,
  price_usd_per_hour REAL NOT NULL, slots INTEGER NOT NULL, pid INTEGER NOT NULL,
  heartbeat REAL, ready REAL
);
"""


# Rows per INSERT statement, largest first: a batch is cut greedily into these sizes. A fixed
# few sizes, not one statement per batch size: sqlite3 caches every distinct statement text
# (128 of them), and a 500-row INSERT's compiled program is large, so one size per batch held
# ~40 MB in the writer thread after a minute of overload (bench/soak.py). 256 x 24 columns stays
# under SQLite's 32,766 bound parameters.
INSERT_SIZES = (256, 64, 16, 4, 1)


def insert_many(db: sqlite3.Connection, table: str, rows: list[tuple[object, ...]]) -> int | None:
    """Multi-row INSERTs: executemany steps once a row, releasing and retaking the GIL each time,
    which made this thread and the event loop trade the GIL thousands of times a second.

    Returns the rowid of the last row inserted (None for no rows)."""
    if not rows:
        return None
    row_marks = "(" + ", ".join("?" * len(rows[0])) + ")"
    last = None
    i = 0
    for size in INSERT_SIZES:
        statement = f"INSERT INTO {table} VALUES " + ", ".join([row_marks] * size)
        while len(rows) - i >= size:
            chunk = rows[i : i + size]
            last = db.execute(statement, list(chain.from_iterable(chunk))).lastrowid
            i += size
    return last


def insert_one(db: sqlite3.Connection, table: str, row: tuple[object, ...]) -> int | None:
    """One row (the writer's slow path, after a batch failed): returns its rowid."""
    marks = ", ".join("?" * len(row))
    return db.execute(f"INSERT INTO {table} VALUES ({marks})", row).lastrowid


# Columns added after a ledger file may have been created: (table, column, declaration).
_ADDED_COLUMNS = (
    ("requests", "saved_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "key_name", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "route", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "degraded", "INTEGER NOT NULL DEFAULT 0"),
    ("requests", "shadow", "INTEGER NOT NULL DEFAULT 0"),
    # Older rows read model_usd = overhead_usd = 0; reports read that as "all model share"
    # (report.py), so rows an older frugal still writes into a migrated file read right too.
    ("requests", "model_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "overhead_usd", "REAL NOT NULL DEFAULT 0"),
    ("requests", "tier_costs", "TEXT NOT NULL DEFAULT ''"),
    ("requests", "tier", "TEXT NOT NULL DEFAULT ''"),  # the caller's tier; older rows: ''
    ("runs", "heartbeat", "REAL"),  # NULL on older runs: billed to their last request
    ("runs", "ready", "REAL"),
)
# Statements run right after a column is added, where its default would misread older rows.
_BACKFILL = {
    # An older run's `started` was stamped after its models loaded: its start-up is unknown,
    # so 0 (ready at start), not its whole life (NULL: never ready).
    ("runs", "ready"): "UPDATE runs SET ready = started",
}


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the tables, and add columns that older ledger files lack (their rows read 0)."""
    have: dict[str, set[str]] = {}
    for table, column, declaration in _ADDED_COLUMNS:  # before the script: it indexes them
        if table not in have:
            have[table] = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if have[table] and column not in have[table]:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if (table, column) in _BACKFILL:
                db.execute(_BACKFILL[table, column])
    db.commit()
    db.executescript(SCHEMA)
    db.commit()


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that waits for other frugal worker processes' writes."""
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    try:
        use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error:
        db.close()  # e.g. "file is not a database": the caller reports it, nothing stays open
        raise
    return db


__all__ = [
    "INSERT_SIZES",
    "SCHEMA",
    "SqlReader",
    "connect",
    "ensure_schema",
    "insert_many",
    "insert_one",
]
