"""The ledger in a PostgreSQL database: one ledger for several machines or Ray replicas.

The SQLite file (ledger.py) is the embedded default; when the processes that serve one set of
endpoints run on more than one machine, each writes its rows here instead, so reports, budgets
and totals cover all of them exactly. Same hot path (a tuple on a queue), same guarantees
(ledger_postgres_writer.py), same tables; each process is a run with its own ``run_id``.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import psycopg

from frugal.accounting.ledger import QueuedLedger
from frugal.accounting.ledger_postgres_schema import connect, ensure_schema, first_line
from frugal.accounting.ledger_postgres_writer import PostgresWriter
from frugal.accounting.ledger_writer import DEFAULT_MAX_HELD_ROWS
from frugal.errors import ConfigError


class PostgresLedger(QueuedLedger):
    """``url``: postgresql://user@host:port/database (no password: ``password_env`` names the
    environment variable that holds it, else libpq's PGPASSWORD or ~/.pgpass)."""

    def __init__(
        self,
        url: str,
        *,
        password_env: str | None = None,
        flush_interval_ms: float = 200.0,
        heartbeat_s: float = 2.0,
        max_held_rows: int = DEFAULT_MAX_HELD_ROWS,
    ) -> None:
        self.url = url
        self.password_env = password_env
        super().__init__(url, flush_interval_ms=flush_interval_ms, heartbeat_s=heartbeat_s,
                         max_held_rows=max_held_rows)  # fmt: skip

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection (ConfigError naming ``ledger.url`` when it cannot be made)."""
        return connect(self.url, password_env=self.password_env)

    def open(
        self,
        *,
        instance: str,
        price_usd_per_hour: float,
        slots: float,
        started_at: float | None = None,
    ) -> None:
        now = time.time()
        started = self._started(started_at, now)
        db = self.connect()
        try:
            ensure_schema(db)
            db.execute(
                "INSERT INTO runs (run_id, started, stopped, instance, price_usd_per_hour, slots, "
                "pid, heartbeat, ready, commits) "
                "VALUES (%s, %s, NULL, %s, %s, %s, %s, %s, NULL, 0)",
                (self.run_id, started, instance, price_usd_per_hour, slots, os.getpid(), now),
            )
            db.commit()
        except psycopg.Error as exc:
            db.close()
            raise ConfigError(
                f"cannot set up the ledger's tables in {self.url}: {first_line(exc)}",
                field="ledger.url",
                hint="the user needs CREATE on the database's schema (the first start makes the "
                "tables), then INSERT, UPDATE and SELECT on them",
            ) from None
        writer = PostgresWriter(
            db, functools.partial(connect, self.url, password_env=self.password_env), self.url,
            self.run_id, self._queue, self._wake, self.health,
            flush_interval_s=self.flush_interval_s, heartbeat_s=self.heartbeat_s,
            max_held_rows=self.max_held_rows,
        )  # fmt: skip
        self._start(writer.run)


__all__ = ["PostgresLedger"]
