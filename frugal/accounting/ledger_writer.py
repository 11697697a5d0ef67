"""The one thread that writes a SqliteLedger's file, and survives whatever the file or a row does.

Rows arrive on a queue; every flush interval the writer commits what came, in one transaction.
What can go wrong, and what it does then:

- another process holds the write lock: retry the transaction (``LOCK_RETRIES`` times);
- a row SQLite cannot store (an integer over 2**63 - 1, a NULL where a column forbids it):
  the batch is retried row by row, only that row is *rejected* (counted, logged), the rest
  commit;
- the file takes no writes at all (a full disk, a read-only or deleted or replaced file): the
  rows are *held* and retried every interval, up to ``max_held_rows``; past that the oldest are
  *lost* (counted, logged). Readiness turns off while this lasts (ledger_health.py);
- a bug in this module: logged with its traceback, the batch's rows counted lost, and the loop
  goes on. The thread ends only when the ledger is closed.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from frugal.accounting.ledger_health import TABLES, LedgerHealth, Rejection
from frugal.accounting.ledger_schema import insert_many, insert_one
from frugal.sqlite_locks import is_busy

log = logging.getLogger("frugal.ledger")

# Each try already waits up to 10 s for the lock (connect()'s busy timeout). A commit that still
# cannot get it fails like any other: its rows are held and retried next interval, and the
# failure counts towards readiness, rather than the writer waiting minutes with readiness on.
LOCK_RETRIES = 3
LOCK_RETRY_S = 0.05
DEFAULT_MAX_HELD_ROWS = 10_000  # request and batch rows kept while the file takes no writes
# A value that cannot be stored in its row: only that row is skipped. Anything else that fails
# a row fails the whole commit (the file, not the row, is the problem).
BAD_ROW_ERRORS = (
    OverflowError,  # an int outside SQLite's 64 bits, at binding
    ValueError,
    TypeError,
    sqlite3.IntegrityError,  # NOT NULL, CHECK
    sqlite3.DataError,  # a string or blob over SQLite's size limit
    sqlite3.ProgrammingError,  # a value of a type SQLite cannot bind
    sqlite3.InterfaceError,
)

Entry = tuple[str, tuple[object, ...]] | threading.Event

# What the writer stamps on its run's row: (time, run_id) each.
RUN_STAMPS = {
    "runs_stop": "UPDATE runs SET stopped = ? WHERE run_id = ?",
    "runs_ready": "UPDATE runs SET ready = COALESCE(ready, ?) WHERE run_id = ?",
    "runs_heartbeat": "UPDATE runs SET heartbeat = MAX(COALESCE(heartbeat, 0), ?) WHERE run_id = ?",
}
# The rows of this run after a rowid (its own, inserted since the last cost interval closed) gain
# their share of the server's work; shadow copies answered no one and take none.
ADD_OVERHEAD = (
    "UPDATE requests SET overhead_usd = ?, cost_usd = model_usd + ? "
    "WHERE rowid > ? AND run_id = ? AND shadow = 0"
)

LAST_ROWID = "SELECT COALESCE(MAX(rowid), 0) FROM requests"


class FileGone(Exception):
    """The ledger's path no longer names the file the writer has open: what it commits would
    go to a file nobody can read (SQLite itself does not notice in WAL mode)."""


@dataclass(slots=True)
class Pending:
    """Rows to commit, in queue order per table, and the cost intervals' overhead markers."""

    rows: dict[str, list[tuple[object, ...]]] = field(default_factory=dict)
    # (requests rows queued before the marker, its overhead share per request)
    marks: list[tuple[int, float]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows) or bool(self.marks)

    def counts(self) -> dict[str, int]:
        """Rows per table (run stamps are not rows)."""
        return {t: len(self.rows[t]) for t in TABLES if self.rows.get(t)}

    def shed(self, max_rows: int) -> dict[str, int]:
        """Keeps what is worth holding for the next try: at most ``max_rows`` request and
        batch rows (the oldest go first, batches before requests: every answer's own row matters
        most), no payloads (each may be up to a request body's size), no stale heartbeat (the
        next try stamps a fresh one). Returns the rows dropped, per table."""
        dropped: dict[str, int] = {}
        payloads = self.rows.pop("payloads", [])
        if payloads:
            dropped["payloads"] = len(payloads)
        self.rows.pop("runs_heartbeat", None)
        excess = sum(self.counts().values()) - max_rows
        batches = self.rows.get("batches", [])
        if excess > 0 and batches:
            cut = min(excess, len(batches))
            del batches[:cut]
            dropped["batches"], excess = cut, excess - cut
        requests = self.rows.get("requests", [])
        if excess > 0 and requests:
            del requests[:excess]
            dropped["requests"] = excess
            # A marker whose rows were dropped still settles the rows committed before them;
            # two markers at one place: the second would find no rows left to settle.
            marks: list[tuple[int, float]] = []
            for upto, share in self.marks:
                upto = max(0, upto - excess)
                if not marks or marks[-1][0] != upto:
                    marks.append((upto, share))
            self.marks = marks
        self.rows = {table: rows for table, rows in self.rows.items() if rows}
        return dropped


class LedgerWriter:
    """Runs as the ledger's thread (``run``); everything else here is called from it."""

    def __init__(
        self,
        db: sqlite3.Connection,
        path: Path,
        run_id: str,
        entries: queue.SimpleQueue[Entry],
        wake: threading.Event,
        health: LedgerHealth,
        *,
        flush_interval_s: float,
        heartbeat_s: float,
        max_held_rows: int = DEFAULT_MAX_HELD_ROWS,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.max_held_rows = max_held_rows
        self._entries = entries
        self._wake = wake
        self._health = health
        self._db = db  # opened by the ledger (so it is the file open() set up), used only here
        self._identity = identity(path)  # (device, inode) of that file
        self._held = Pending()
        self._stopping = False
        # This run's request rows up to this rowid have their overhead share; the last inserted.
        # Both start at the table's last rowid when this run first commits (``_baselined``).
        self._shared_up_to = self._last_rowid = 0
        self._baselined = False

    def run(self) -> None:
        last_beat = time.monotonic()  # open() wrote the first heartbeat
        while not self._stopping:
            # Wake on a timer (or a flush), never per row: a wake per put would make the hot
            # path and this thread trade the GIL on every request.
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            pending, self._held = self._held, Pending()
            waiters: list[threading.Event] = []
            try:
                self._drain(pending, waiters)
                # The heartbeat rides on this thread: it wakes every flush interval anyway, so a
                # beat needs no thread of its own, only an UPDATE when one is due. Every commit of
                # rows carries one too (same transaction), so the heartbeat is never older than a
                # committed row and a killed run's bill covers everything it recorded.
                beat = time.monotonic()
                if pending or beat - last_beat >= self.heartbeat_s:
                    pending.rows.setdefault("runs_heartbeat", []).append((time.time(), self.run_id))
                    last_beat = beat
                if pending:
                    self._commit(pending)
            except Exception:  # a bug here: never let it end the thread and every later row
                log.exception("ledger %s: the writer failed; it goes on", self.path)
                self._held = Pending()
                self._health.broke()
                self._health.gave_up("the writer failed (the traceback above)", pending.counts())
                self._wake.set()  # what the failed round left queued (a flush's waiter): now
            finally:
                for waiter in waiters:  # flush() returns whether or not the rows went in
                    waiter.set()
        self._health.gave_up("the ledger closed while its file took no writes",
                             self._held.counts())  # fmt: skip
        self._db.close()

    def _drain(self, pending: Pending, waiters: list[threading.Event]) -> None:
        while True:
            try:
                entry = self._entries.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, threading.Event):
                waiters.append(entry)
            elif entry[0] == "stop":
                self._stopping = True
            elif entry[0] == "overhead":  # after the rows queued before it: keep the order
                share = cast(float, entry[1][0])
                pending.marks.append((len(pending.rows.get("requests", ())), share))
            else:
                pending.rows.setdefault(entry[0], []).append(entry[1])

    # ---- one commit ---------------------------------------------------------------------------

    def _commit(self, pending: Pending) -> None:
        """Commits ``pending``; on failure holds what it can for the next interval."""
        counts = pending.counts()
        db = self._db
        try:
            self._check_file()
        except (OSError, FileGone) as exc:
            self._fail(pending, counts, exc)
            return
        try:
            rejections = self._transaction(db, pending, row_by_row=False)
        except Exception:  # not a lock (those were retried): find the rows that cannot go in
            try:
                rejections = self._transaction(db, pending, row_by_row=True)
            except Exception as exc:  # no row can go in: the file is the problem
                self._fail(pending, counts, exc)
                return
        for rejection in rejections:
            counts[rejection.table] -= 1
        self._health.wrote(counts, rejections)

    def _fail(self, pending: Pending, counts: dict[str, int], exc: BaseException) -> None:
        lost = pending.shed(self.max_held_rows)
        self._held = pending
        held = sum(pending.counts().values())
        self._health.failed(describe(exc), rows=sum(counts.values()), held=held, lost=lost)

    def _transaction(
        self, db: sqlite3.Connection, pending: Pending, *, row_by_row: bool
    ) -> list[Rejection]:
        """One transaction of everything pending, retried while another process holds the
        lock. ``row_by_row``: rows that cannot be stored are skipped and returned."""
        for attempt in range(LOCK_RETRIES):
            rejections: list[Rejection] | None = [] if row_by_row else None
            try:
                with db:
                    settled = self._insert_requests(db, pending, rejections)
                    for table, rows in pending.rows.items():
                        if table in RUN_STAMPS:
                            db.executemany(RUN_STAMPS[table], rows)
                        elif table != "requests":
                            self._insert(db, table, rows, rejections)
                self._shared_up_to, self._last_rowid = settled
                self._baselined = True
                return rejections or []
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or attempt == LOCK_RETRIES - 1:
                    raise
                time.sleep(LOCK_RETRY_S)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _insert_requests(
        self, db: sqlite3.Connection, pending: Pending, rejections: list[Rejection] | None
    ) -> tuple[int, int]:
        """Insert the rows in queue order, applying each cost interval's overhead where its
        marker stood. Returns (the last rowid whose share is settled, the last rowid inserted)."""
        rows = pending.rows.get("requests", [])
        shared_up_to, last = self._shared_up_to, self._last_rowid
        if not self._baselined:
            # This run's rows all come after the table's last rowid now (SQLite numbers a new
            # row past the largest, and this transaction holds the write lock). Starting from
            # 0 instead, the first interval's UPDATE walked every earlier run's rows: seconds
            # of this thread's CPU on a ledger of millions of rows, at every start.
            shared_up_to = last = db.execute(LAST_ROWID).fetchone()[0]
        start = 0
        for upto, share in pending.marks:
            if upto > start:
                inserted = self._insert(db, "requests", rows[start:upto], rejections)
                last = last if inserted is None else inserted
                start = upto
            db.execute(ADD_OVERHEAD, (share, share, shared_up_to, self.run_id))
            shared_up_to = last
        if start < len(rows):
            inserted = self._insert(db, "requests", rows[start:], rejections)
            last = last if inserted is None else inserted
        return shared_up_to, last

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        table: str,
        rows: list[tuple[object, ...]],
        rejections: list[Rejection] | None,
    ) -> int | None:
        """All rows in a few statements; or, given ``rejections``, one by one, skipping (and
        listing) those that cannot be stored. Returns the last rowid inserted, if any."""
        if rejections is None:
            return insert_many(db, table, rows)
        last = None
        for row in rows:
            try:
                last = insert_one(db, table, row)
            except BAD_ROW_ERRORS as exc:
                rejections.append(Rejection(table, describe_row(table, row), describe(exc)))
        return last

    # ---- the file ----------------------------------------------------------------------------

    def _check_file(self) -> None:
        """A deleted or replaced file takes commits without an error: check the path first.
        (The writer never reopens the path: that would make a new, empty ledger there.)"""
        try:
            now = identity(self.path)
        except FileNotFoundError:
            raise FileGone(f"{self.path} was deleted while the server ran") from None
        if now != self._identity:
            raise FileGone(f"{self.path} was replaced by another file while the server ran")


def identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    text = str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else f"{text} ({type(exc).__name__})"


def describe_row(table: str, row: tuple[object, ...]) -> str:
    """Names the row in a log line: its request id, or its model and time."""
    if table == "requests":
        return f"request_id {row[2]!r}"
    if table == "payloads":
        return f"request_id {row[1]!r}"
    if table == "batches":
        return f"model {row[2]}:{row[3]}, ts {row[0]}"
    return f"{len(row)} values"


__all__ = [
    "BAD_ROW_ERRORS",
    "DEFAULT_MAX_HELD_ROWS",
    "FileGone",
    "LedgerWriter",
    "Pending",
    "describe",
]
