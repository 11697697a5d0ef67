"""The audit log's hash chain: intact when untouched, broken at the first edited or deleted row."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest

from frugal.access import AuditLog
from frugal.access.audit import GENESIS


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "ledger.db")
    log.append("cli:ops", "key.create", "team-a", role="user", rps=50)
    log.append("server", "model.load", "digits:1", sha256="ab" * 32)
    log.append("team-admin", "cache.invalidate", "digits", invalidated=12)
    log.append("cli:ops", "key.revoke", "team-a")
    return log


def test_rows_link_to_the_one_before(audit: AuditLog) -> None:
    entries = audit.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[0].detail == {"role": "user", "rps": 50}
    verdict = audit.verify()
    assert verdict.ok and verdict.rows == 4 and verdict.head == entries[-1].hash


def test_an_edited_row_is_named(audit: AuditLog) -> None:
    with sqlite3.connect(audit.path) as db:
        db.execute("""UPDATE audit SET detail = '{"invalidated":0}' WHERE seq = 3""")
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_seq == 3 and "edited" in verdict.reason


def test_an_edited_actor_is_named(audit: AuditLog) -> None:
    with sqlite3.connect(audit.path) as db:
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 1")
    assert audit.verify().broken_seq == 1


def test_a_deleted_row_is_named(audit: AuditLog) -> None:
    with sqlite3.connect(audit.path) as db:
        db.execute("DELETE FROM audit WHERE seq = 2")
    verdict = audit.verify()
    assert verdict.broken_seq == 3 and "row 2 deleted" in verdict.reason


def test_a_deleted_row_with_renumbering_is_still_caught(audit: AuditLog) -> None:
    """Closing the gap in seq does not help: the next row's link no longer matches."""
    with sqlite3.connect(audit.path) as db:
        db.execute("DELETE FROM audit WHERE seq = 2")
        db.execute("UPDATE audit SET seq = seq - 1 WHERE seq > 2")
    verdict = audit.verify()
    assert verdict.broken_seq == 2 and not verdict.ok


def test_a_rehashed_row_still_breaks_the_next_link(audit: AuditLog) -> None:
    """Editing a row and recomputing its own hash breaks the link of the row after it."""
    from frugal.access.audit import row_hash

    with sqlite3.connect(audit.path) as db:
        seq, ts, actor, action, target, _, prev, _ = db.execute(
            "SELECT * FROM audit WHERE seq = 2"
        ).fetchone()
        forged = row_hash(seq, ts, actor, action, target, "{}", prev)
        db.execute("UPDATE audit SET detail = '{}', hash = ? WHERE seq = 2", (forged,))
    verdict = audit.verify()
    assert verdict.broken_seq == 3 and "link" in verdict.reason


def test_concurrent_appends_make_one_chain(tmp_path: Path) -> None:
    """The server and the CLI may append at once: BEGIN IMMEDIATE keeps one chain."""
    log = AuditLog(tmp_path / "ledger.db")

    def writer(name: str) -> None:
        for i in range(25):
            log.append(name, "test", str(i))

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = log.verify()
    assert verdict.ok and verdict.rows == 100
