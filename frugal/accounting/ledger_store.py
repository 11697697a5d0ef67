"""Which store a ledger lives in, decided in one place: a SQLite file or a PostgreSQL database.

``ledger.url`` (postgresql://...) picks PostgreSQL, for several machines or Ray replicas that
share one ledger; without it, the SQLite file ``ledger.path`` (the embedded default). The
server opens its writer here, and the readers (report, budgets, retention) open a connection
here, so each runs its one query on either store.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from frugal.accounting.ledger import QueuedLedger, SqliteLedger
from frugal.accounting.ledger_schema import SqlReader, connect, ensure_schema
from frugal.config import LedgerConfig, is_postgres_url
from frugal.errors import ConfigError

POSTGRES_EXTRA_HINT = "pip install 'frugal[postgres]'"


def build_ledger(config: LedgerConfig) -> QueuedLedger:
    """The ledger ``config`` names, not yet opened (``open`` writes the run's row)."""
    if config.url is None:
        return SqliteLedger(config.path, flush_interval_ms=config.flush_interval_ms,
                            heartbeat_s=config.heartbeat_s)  # fmt: skip
    try:
        from frugal.accounting.ledger_postgres import PostgresLedger
    except ImportError:
        raise ConfigError(
            "a postgresql:// ledger needs the postgres extra (psycopg 3)", field="ledger.url",
            hint=POSTGRES_EXTRA_HINT,
        ) from None  # fmt: skip
    return PostgresLedger(config.url, password_env=config.password_env,
                          flush_interval_ms=config.flush_interval_ms,
                          heartbeat_s=config.heartbeat_s)  # fmt: skip


def check_ledger_url(config: LedgerConfig, *, file: str = "") -> None:
    """Connect to ``ledger.url`` once and hang up, writing nothing: at start (before the models
    load, and before ``--workers`` start processes of their own) and in ``frugal validate``, a
    missing extra, a bad URL, an unreachable server or a refused login is a ConfigError naming
    the field, not a worker dying later."""
    if config.url is None:
        return
    # Imports psycopg itself: without the extra, a ConfigError naming ledger.url says so.
    from frugal.accounting.ledger_postgres_schema import connect as pg_connect

    pg_connect(config.url, password_env=config.password_env, file=file).close()


def ledger_location(config: LedgerConfig) -> str | Path:
    """Where the config's ledger is: its URL, else its file."""
    return config.url if config.url is not None else config.path


@contextlib.contextmanager
def open_reader(
    location: str | Path, *, password_env: str | None = None, field: str = "ledger.url"
) -> Iterator[SqlReader]:
    """A connection for reading (and pruning) the ledger at ``location``; committed (when
    the block did not raise) and closed after.

    A PostgreSQL database where no server has written yet is a ConfigError naming ``field``,
    like a missing file. For a SQLite file the caller checks the file first (its messages
    differ per reader); tables an older frugal lacks are added."""
    if is_postgres_url(location):
        from frugal.accounting.ledger_postgres_schema import URL_HINT, PostgresReader
        from frugal.accounting.ledger_postgres_schema import connect as pg_connect

        reader = PostgresReader(pg_connect(str(location), password_env=password_env,
                                           field=field))  # fmt: skip
        try:
            if not reader.has_tables():
                hint = "run `frugal serve` with this ledger.url first; " + URL_HINT
                raise ConfigError(f"no ledger in {location} yet", field=field, hint=hint)
            yield reader
            reader.db.commit()
        finally:
            reader.close()
        return
    db = connect(Path(location))
    try:
        ensure_schema(db)  # a ledger from an older frugal lacks newer columns
        yield db
        db.commit()  # a reader that deletes (retention) commits only when it did not fail
    finally:
        db.close()


def reader_errors() -> tuple[type[Exception], ...]:
    """The exceptions a reader's query raises on a store that is not a frugal ledger."""
    errors: list[type[Exception]] = [sqlite3.DatabaseError]
    try:
        import psycopg
    except ImportError:
        return tuple(errors)
    return (*errors, psycopg.Error)


__all__ = ["build_ledger", "check_ledger_url", "ledger_location", "open_reader", "reader_errors"]
