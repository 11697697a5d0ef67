"""The one thread that writes a PostgresLedger's rows, and survives the server going away.

The same contract as the SQLite writer (ledger_writer.py): rows arrive on a queue; every flush
interval the writer commits what came in one transaction (COPY per table). Then:

- a row PostgreSQL cannot store (an integer over 2**63 - 1, a NUL in a text): the transaction is
  retried row by row, each in a savepoint; only that row is *rejected* (counted, logged);
- the server cannot be reached (down, restarting, the network): the rows are *held* and the
  writer reconnects every interval, up to ``max_held_rows`` (then the oldest are *lost*,
  counted, logged); readiness is off while this lasts (ledger_health.py);
- the connection drops while a transaction may have been committing: nobody can say whether it
  went in. Each transaction also writes the run's commit count (``runs.commits``); after
  reconnecting the writer reads it back, and drops the held rows that did go in, so no row is
  written twice and none is lost;
- a bug in this module: logged with its traceback, the round's rows counted lost, and the loop
  goes on. The thread ends only when the ledger is closed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import psycopg

from frugal.accounting.ledger_health import TABLES, LedgerHealth, Rejection
from frugal.accounting.ledger_postgres_schema import copy_statement, first_line, insert_statement
from frugal.accounting.ledger_writer import DEFAULT_MAX_HELD_ROWS, Entry, Pending, describe_row

log = logging.getLogger("frugal.ledger")

# A value that cannot be stored in its row: only that row is skipped. Anything else (a lost
# connection, a dropped table) fails the whole commit, and the rows are held.
BAD_ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, OverflowError, ValueError, TypeError)

RUN_STAMPS = {
    "runs_stop": "UPDATE runs SET stopped = %s WHERE run_id = %s",
    "runs_ready": "UPDATE runs SET ready = COALESCE(ready, %s) WHERE run_id = %s",
}
# In every transaction, first: it opens the transaction (so the row-by-row path's savepoints are
# savepoints, not commits of their own), counts the commit and stamps the heartbeat, which is
# then never older than a committed row.
COMMIT_STAMP = (
    "UPDATE runs SET commits = %s, heartbeat = GREATEST(COALESCE(heartbeat, 0), %s) "
    "WHERE run_id = %s"
)
# A cost interval's overhead share, for this run's rows queued before its marker.
ADD_OVERHEAD = (
    "UPDATE requests SET overhead_usd = %s, cost_usd = model_usd + %s "
    "WHERE run_id = %s AND seq > %s AND seq <= %s AND shadow = 0"
)


@dataclass(slots=True)
class InDoubt:
    """A transaction whose connection dropped: the rows it held, and what it would have set."""

    rows: dict[str, list[tuple[object, ...]]]
    shared_up_to: int


class PostgresWriter:
    """Runs as the ledger's thread (``run``); everything else here is called from it."""

    def __init__(
        self,
        db: psycopg.Connection[Any],
        reconnect: Callable[[], psycopg.Connection[Any]],
        where: str,
        run_id: str,
        entries: queue.SimpleQueue[Entry],
        wake: threading.Event,
        health: LedgerHealth,
        *,
        flush_interval_s: float,
        heartbeat_s: float,
        max_held_rows: int = DEFAULT_MAX_HELD_ROWS,
    ) -> None:
        self.where = where
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.max_held_rows = max_held_rows
        self._db: psycopg.Connection[Any] | None = db
        self._reconnect = reconnect
        self._entries = entries
        self._wake = wake
        self._health = health
        self._held = Pending()
        self._held_marks: list[tuple[int, float]] = []
        self._stopping = False
        self._seq = 0  # the last number given to one of this run's request rows
        self._shared_up_to = 0  # rows up to this seq have their overhead share, committed
        self._commits = 0  # transactions committed (runs.commits)
        self._in_doubt: InDoubt | None = None

    def run(self) -> None:
        last_beat = time.monotonic()  # open() wrote the first heartbeat
        while not self._stopping:
            # Wake on a timer (or a flush), never per row: see ledger_writer.py.
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            pending, self._held = self._held, Pending()
            marks, self._held_marks = self._held_marks, []
            waiters: list[threading.Event] = []
            try:
                self._drain(pending, marks, waiters)
                beat = time.monotonic()
                if pending or marks or beat - last_beat >= self.heartbeat_s:
                    last_beat = beat
                    self._commit(pending, marks)
            except Exception:  # a bug here: never let it end the thread and every later row
                log.exception("ledger %s: the writer failed; it goes on", self.where)
                self._held, self._held_marks = Pending(), []
                self._health.broke()
                self._health.gave_up("the writer failed (the traceback above)", pending.counts())
                self._wake.set()
            finally:
                for waiter in waiters:  # flush() returns whether or not the rows went in
                    waiter.set()
        self._health.gave_up("the ledger closed while its database took no writes",
                             self._held.counts())  # fmt: skip
        if self._db is not None:
            with contextlib.suppress(psycopg.Error):
                self._db.close()

    def _drain(
        self, pending: Pending, marks: list[tuple[int, float]], waiters: list[threading.Event]
    ) -> None:
        while True:
            try:
                entry = self._entries.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, threading.Event):
                waiters.append(entry)
            elif entry[0] == "stop":
                self._stopping = True
            elif entry[0] == "overhead":  # for the request rows numbered so far
                marks.append((self._seq, cast(float, entry[1][0])))
            elif entry[0] == "requests":
                self._seq += 1
                pending.rows.setdefault("requests", []).append((*entry[1], self._seq))
            else:
                pending.rows.setdefault(entry[0], []).append(entry[1])

    # ---- one commit ---------------------------------------------------------------------------

    def _commit(self, pending: Pending, marks: list[tuple[int, float]]) -> None:
        """Commits ``pending``; on failure holds what it can for the next interval."""
        try:
            db = self._connection()
            if self._in_doubt is not None:
                self._settle_doubt(db, pending)
        except Exception as exc:  # the server is unreachable: no transaction was sent
            self._fail(pending, marks, pending.counts(), exc, in_doubt=False)
            return
        counts = pending.counts()
        try:
            rejections, shared_up_to = self._transaction(db, pending, marks, row_by_row=False)
        except Exception as exc:  # not yet known whether a row or the server is the problem
            if db.broken or db.closed:
                self._fail(pending, marks, counts, exc, in_doubt=True)
                return
            try:
                rejections, shared_up_to = self._transaction(db, pending, marks, row_by_row=True)
            except Exception as exc:  # no row can go in: the database is the problem
                self._fail(pending, marks, counts, exc, in_doubt=db.broken or db.closed)
                return
        self._commits += 1
        self._shared_up_to = shared_up_to
        for rejection in rejections:
            counts[rejection.table] -= 1
        self._health.wrote(counts, rejections)

    def _connection(self) -> psycopg.Connection[Any]:
        db = self._db
        if db is not None and not db.broken and not db.closed:
            return db
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()
            self._db = None
        self._db = self._reconnect()
        log.warning("ledger %s: connected again", self.where)
        return self._db

    def _settle_doubt(self, db: psycopg.Connection[Any], pending: Pending) -> None:
        """Reads back whether the transaction cut off by a lost connection went in; if it did,
        its rows (still held in ``pending``) are counted written and not sent again."""
        assert self._in_doubt is not None
        row = db.execute("SELECT commits FROM runs WHERE run_id = %s", (self.run_id,)).fetchone()
        db.rollback()  # end the read's transaction
        doubt, self._in_doubt = self._in_doubt, None
        if row is None or row[0] <= self._commits:
            return  # it did not: the held rows go in with this round's
        self._commits = int(row[0])
        self._shared_up_to = max(self._shared_up_to, doubt.shared_up_to)
        went_in = {id(r) for rows in doubt.rows.values() for r in rows}
        written: dict[str, int] = {}
        for table in TABLES:
            rows = pending.rows.get(table, [])
            kept = [r for r in rows if id(r) not in went_in]
            if len(kept) < len(rows):
                written[table] = len(rows) - len(kept)
                pending.rows[table] = kept
        pending.rows = {table: rows for table, rows in pending.rows.items() if rows}
        log.warning("ledger %s: the commit cut off by the lost connection went in; its %d "
                    "row(s) are not sent again", self.where, sum(written.values()))  # fmt: skip
        self._health.wrote(written, [])

    def _fail(
        self,
        pending: Pending,
        marks: list[tuple[int, float]],
        counts: dict[str, int],
        exc: BaseException,
        *,
        in_doubt: bool,
    ) -> None:
        if in_doubt and self._in_doubt is None:
            # The rows themselves (kept alive here), so their ids name them after shedding.
            rows = {table: list(pending.rows.get(table, [])) for table in TABLES}
            self._in_doubt = InDoubt(rows, marks[-1][0] if marks else self._shared_up_to)
        lost = pending.shed(self.max_held_rows)
        self._held, self._held_marks = pending, marks
        held = sum(pending.counts().values())
        self._health.failed(describe(exc), rows=sum(counts.values()), held=held, lost=lost)

    def _transaction(
        self,
        db: psycopg.Connection[Any],
        pending: Pending,
        marks: list[tuple[int, float]],
        *,
        row_by_row: bool,
    ) -> tuple[list[Rejection], int]:
        """One transaction of everything pending. ``row_by_row``: rows that cannot be stored
        are skipped and returned. Returns them and the seq whose overhead is now settled."""
        rejections: list[Rejection] | None = [] if row_by_row else None
        shared_up_to = self._shared_up_to
        try:
            with db.cursor() as cur:
                cur.execute(COMMIT_STAMP, (self._commits + 1, time.time(), self.run_id))
                for table in TABLES:
                    if pending.rows.get(table):
                        self._insert(db, cur, table, pending.rows[table], rejections)
                for upto, share in marks:  # the rows they settle were inserted above, or before
                    if upto > shared_up_to:
                        cur.execute(ADD_OVERHEAD, (share, share, self.run_id, shared_up_to, upto))
                        shared_up_to = upto
                for stamp, statement in RUN_STAMPS.items():
                    if pending.rows.get(stamp):
                        cur.executemany(statement, pending.rows[stamp])
            db.commit()
        except BaseException:
            if not db.broken and not db.closed:
                with contextlib.suppress(psycopg.Error):
                    db.rollback()
            raise
        return rejections or [], shared_up_to

    @staticmethod
    def _insert(
        db: psycopg.Connection[Any],
        cur: psycopg.Cursor[Any],
        table: str,
        rows: list[tuple[object, ...]],
        rejections: list[Rejection] | None,
    ) -> None:
        """All rows in one COPY; or, given ``rejections``, one by one, each in a savepoint,
        skipping (and listing) those that cannot be stored."""
        if rejections is None:
            with cur.copy(copy_statement(table)) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        statement = insert_statement(table)
        for row in rows:
            try:
                with db.transaction():  # a savepoint: a bad row undoes only itself
                    cur.execute(statement, row)
            except BAD_ROW_ERRORS as exc:
                if db.broken or db.closed:
                    raise
                rejections.append(Rejection(table, describe_row(table, row), describe(exc)))


def describe(exc: BaseException) -> str:
    return f"{first_line(exc)} ({type(exc).__name__})"


__all__ = ["BAD_ROW_ERRORS", "PostgresWriter"]
