"""WAL mode switched on while another connection holds a new file's lock (sqlite_locks.py)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from frugal.access import AuditLog
from frugal.sqlite_locks import use_wal


@contextmanager
def write_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection's write transaction on ``path`` (a new file, rollback journal)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE IF NOT EXISTS other (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def in_thread(
    fn: Callable[[], object],
) -> tuple[threading.Thread, list[BaseException], list[float]]:
    errors: list[BaseException] = []
    took: list[float] = []

    def run() -> None:
        start = time.monotonic()
        try:
            fn()
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        took.append(time.monotonic() - start)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors, took


def test_sqlite_refuses_the_switch_at_once_without_waiting(tmp_path: Path) -> None:
    """Why use_wal exists: the plain pragma ignores the busy timeout of its connection."""
    path = tmp_path / "new.db"
    with write_lock_held(path):
        db = sqlite3.connect(path, timeout=5.0)
        start = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            db.execute("PRAGMA journal_mode=WAL")
        assert time.monotonic() - start < 1.0  # not the 5 s timeout
        db.close()


def test_use_wal_waits_for_the_lock_then_switches(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    with write_lock_held(path):
        thread, errors, took = in_thread(lambda: use_wal(db, timeout_s=5.0))
        time.sleep(0.2)
        assert thread.is_alive()  # still waiting while the lock is held
    thread.join(10)
    assert errors == []
    assert took[0] >= 0.2
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_use_wal_gives_up_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path, timeout=5.0)
    with write_lock_held(path):
        start = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            use_wal(db, timeout_s=0.3)
        assert 0.3 <= time.monotonic() - start < 3.0
    db.close()


def test_use_wal_raises_anything_else_at_once(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but long enough to have a header of its own\n" * 4)
    db = sqlite3.connect(path, timeout=5.0)
    start = time.monotonic()
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        use_wal(db, timeout_s=5.0)
    assert time.monotonic() - start < 1.0
    db.close()


def test_an_audit_append_waits_for_a_new_ledgers_lock(tmp_path: Path) -> None:
    """The server and `frugal keys` appending to a new ledger at once: the second waited 0 s and
    failed with "not a frugal ledger: database is locked" (a flaky concurrency test showed it)."""
    path = tmp_path / "ledger.db"
    log = AuditLog(path)
    with write_lock_held(path):
        thread, errors, _ = in_thread(lambda: log.append("cli:ops", "key.create", "a"))
        time.sleep(0.2)
    thread.join(20)
    assert errors == []
    verdict = log.verify()
    assert verdict.ok and verdict.rows == 1
