"""The PostgreSQL ledger's schema, and connecting to it with errors that name the setting.

The tables and columns are the SQLite file's (ledger_schema.py), so the report, budgets and
retention run the same SQL on either store (``PostgresReader`` turns SQLite's ``?`` into
psycopg's ``%s``). Two columns are PostgreSQL's own, because several processes write one
database and a connection can drop between sending COMMIT and hearing back:

- ``requests.seq``: the writer's number for each of its run's rows (SQLite's implicit rowid
  plays this part there), so a cost interval's overhead finds the rows it is for;
- ``runs.commits``: how many transactions the run's writer has committed, written in each
  transaction, so after a dropped connection the writer can tell whether its last commit went
  in (rows counted once, never twice).

psycopg is imported inside the functions: the config and the SQLite ledger load without the
``postgres`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from frugal.config import postgres_url_problem
from frugal.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

# An arbitrary constant: the advisory lock that makes concurrent first starts (``--workers``,
# Ray replicas) create the tables one at a time (CREATE TABLE IF NOT EXISTS races otherwise).
SCHEMA_LOCK = 0x6672756761_6C  # "frugal"
CONNECT_TIMEOUT_S = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
  ts DOUBLE PRECISION NOT NULL, run_id TEXT NOT NULL, request_id TEXT NOT NULL,
  endpoint TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, items BIGINT NOT NULL,
  batch_size DOUBLE PRECISION NOT NULL, queue_ms DOUBLE PRECISION NOT NULL,
  compute_ms DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL, status BIGINT NOT NULL, cache TEXT NOT NULL DEFAULT 'bypass',
  saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0, key_name TEXT NOT NULL DEFAULT '',
  tokens BIGINT NOT NULL DEFAULT 0, route TEXT NOT NULL DEFAULT '',
  degraded BIGINT NOT NULL DEFAULT 0, shadow BIGINT NOT NULL DEFAULT 0,
  model_usd DOUBLE PRECISION NOT NULL DEFAULT 0, overhead_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
  tier_costs TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL DEFAULT 0,
  tier TEXT NOT NULL DEFAULT ''
);
-- Columns added after a database may have been created (older rows read the default).
ALTER TABLE requests ADD COLUMN IF NOT EXISTS tier TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
CREATE INDEX IF NOT EXISTS requests_key ON requests (key_name, ts);
CREATE INDEX IF NOT EXISTS requests_run_seq ON requests (run_id, seq);
CREATE TABLE IF NOT EXISTS payloads (
  ts DOUBLE PRECISION NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
  key_name TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL,
  expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS payloads_expires ON payloads (expires);
CREATE TABLE IF NOT EXISTS batches (
  ts DOUBLE PRECISION NOT NULL, run_id TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
  size BIGINT NOT NULL, reason TEXT NOT NULL, busy_s DOUBLE PRECISION NOT NULL,
  cost_usd DOUBLE PRECISION NOT NULL, queue_ms_mean DOUBLE PRECISION NOT NULL,
  queue_ms_max DOUBLE PRECISION NOT NULL, failed BIGINT NOT NULL, padded_size BIGINT,
  padding_waste DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS batches_ts ON batches (ts);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started DOUBLE PRECISION NOT NULL, stopped DOUBLE PRECISION,
  instance TEXT NOT NULL, price_usd_per_hour DOUBLE PRECISION NOT NULL,
  slots DOUBLE PRECISION NOT NULL, pid BIGINT NOT NULL, heartbeat DOUBLE PRECISION,
  ready DOUBLE PRECISION, commits BIGINT NOT NULL DEFAULT 0
);
"""

# Columns in the order the ledger queues their values (ledger.py), then the writer's own.
COLUMNS = {
    "requests": (
        "ts", "run_id", "request_id", "endpoint", "model", "version", "items", "batch_size",
        "queue_ms", "compute_ms", "latency_ms", "cost_usd", "status", "cache", "saved_usd",
        "key_name", "tokens", "route", "degraded", "shadow", "model_usd", "overhead_usd",
        "tier_costs", "tier", "seq",
    ),
    "payloads": ("ts", "request_id", "endpoint", "key_name", "request", "response", "expires"),
    "batches": (
        "ts", "run_id", "model", "version", "size", "reason", "busy_s", "cost_usd",
        "queue_ms_mean", "queue_ms_max", "failed", "padded_size", "padding_waste",
    ),
}  # fmt: skip


def copy_statement(table: str) -> str:
    return f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN"


def insert_statement(table: str) -> str:
    columns = COLUMNS[table]
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def ensure_schema(db: psycopg.Connection[Any]) -> None:
    """Create the tables (one process at a time) and commit."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)  # constant text, no user input


def connect(
    url: str, *, password_env: str | None = None, field: str = "ledger.url", file: str = ""
) -> psycopg.Connection[Any]:
    """A connection to the ledger's database (not in autocommit: the writer commits batches).

    Every way this fails at start (no extra, a bad URL, no server, refused login, no database)
    is a ConfigError naming ``field``; the password never appears in a message.
    """
    problem = postgres_url_problem(url)
    if problem is not None:
        raise ConfigError(problem, field=field, file=file, hint=URL_HINT)
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs the postgres extra (psycopg 3)", field=field,
            file=file, hint="pip install 'frugal[postgres]'",
        ) from None  # fmt: skip
    # No server-side prepared statements (prepare_threshold=None): the writer runs a handful of
    # statements per flush, and a transaction-mode pooler in between would not keep them.
    kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "prepare_threshold": None,
                              "application_name": "frugal-ledger"}  # fmt: skip
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise ConfigError(
                f"the environment variable {password_env} is not set",
                field="ledger.password_env",
                file=file,
                hint=f"export {password_env}=<the database password>, or leave password_env out "
                "and use PGPASSWORD or ~/.pgpass",
            )
        kwargs["password"] = password
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise ConfigError(
            f"cannot connect to {url}: {first_line(exc)}", field=field, file=file, hint=URL_HINT
        ) from None


URL_HINT = (
    "a PostgreSQL ledger is postgresql://user@host:port/database; its password comes from the "
    "variable ledger.password_env names, or PGPASSWORD / ~/.pgpass (docs/ledger.md)"
)


def first_line(exc: BaseException) -> str:
    """psycopg's messages run over several lines (DETAIL, HINT): the first says what failed."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class PostgresReader:
    """Runs the SQLite readers' SQL on PostgreSQL: the same statements, ``?`` marks as ``%s``.

    The readers' SQL has no ``%`` and no ``?`` but its parameters, so the swap is exact."""

    def __init__(self, db: psycopg.Connection[Any]) -> None:
        self.db = db

    def execute(self, sql: str, parameters: Sequence[object] = (), /) -> Any:
        return self.db.execute(sql.replace("?", "%s"), parameters)

    def has_tables(self) -> bool:
        """Whether a frugal server has written here yet (the runs table exists)."""
        row = self.db.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()
        return row is not None and bool(row[0])

    def close(self) -> None:
        self.db.close()


__all__ = [
    "COLUMNS",
    "SCHEMA",
    "URL_HINT",
    "PostgresReader",
    "connect",
    "copy_statement",
    "ensure_schema",
    "first_line",
    "insert_statement",
]
