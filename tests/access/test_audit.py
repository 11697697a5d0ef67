"""The audit log's hash chain: intact when untouched, broken at the first edited or deleted row."""

from __future__ import annotations

import functools
import itertools
import re
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from frugal.access import AuditKey, AuditLog, Head, read_audit_key, read_head_file, write_new_key
from frugal.access.audit import GENESIS, row_hash
from frugal.errors import ConfigError


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
        seq, ts, actor, action, target, prev = db.execute(
            "SELECT seq, ts, actor, action, target, prev_hash FROM audit WHERE seq = 2"
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


# ---- anchors: the key and the exported head (docs/security.md) -----------------------------


@pytest.fixture
def key(tmp_path: Path) -> AuditKey:
    return write_new_key(tmp_path / "audit.key")


def test_a_keyed_chain_verifies_only_with_its_key(tmp_path: Path, key: AuditKey) -> None:
    """Keyed rows are HMACs: the right key checks them, none or another key is refused."""
    keyed = AuditLog(tmp_path / "ledger.db", key=key)
    keyed.append("cli:ops", "key.create", "team-a", role="viewer")
    keyed.append("server", "model.load", "digits:1")
    verdict = keyed.verify()
    assert verdict.ok and verdict.rows == 2 and verdict.keyed_rows == 2
    assert {e.scheme for e in keyed.entries()} == {key.scheme}
    with pytest.raises(ConfigError, match="checking them needs the key"):
        AuditLog(keyed.path).verify()
    other = write_new_key(tmp_path / "other.key")
    with pytest.raises(ConfigError, match=f"but the key given is key {other.id}"):
        AuditLog(keyed.path, key=other).verify()
    with pytest.raises(ConfigError, match="appending to it needs its key"):
        AuditLog(keyed.path).append("cli:ops", "key.revoke", "team-a")
    assert keyed.verify().rows == 2


def test_an_old_unkeyed_chain_stays_verifiable_and_is_sealed_by_the_first_keyed_row(
    tmp_path: Path, key: AuditKey
) -> None:
    """A table from before `scheme` existed gains it; its rows stay sha256 and still verify."""
    path = tmp_path / "ledger.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT "
                   "NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL, "
                   "prev_hash TEXT NOT NULL, hash TEXT NOT NULL)")  # fmt: skip
        digest = row_hash(1, 1.5, "cli:ops", "key.create", "a", "{}", GENESIS)
        db.execute("INSERT INTO audit VALUES (1, 1.5, 'cli:ops', 'key.create', 'a', '{}', ?, ?)",
                   (GENESIS, digest))  # fmt: skip
    assert AuditLog(path).verify().ok  # read without adding the column
    keyed = AuditLog(path, key=key)
    assert "none of the 1 rows is keyed" in keyed.verify().reason  # a key alone proves nothing
    keyed.append("server", "model.load", "digits:1")
    verdict = keyed.verify()
    assert verdict.ok and verdict.rows == 2 and verdict.keyed_rows == 1
    with sqlite3.connect(path) as db:  # the old row, rewritten: the keyed row's link shows it
        db.execute("UPDATE audit SET target = 'b', hash = ? WHERE seq = 1",
                   (row_hash(1, 1.5, "cli:ops", "key.create", "b", "{}", GENESIS),))  # fmt: skip
    assert keyed.verify().broken_seq == 2


def test_concurrent_appends_leave_the_newest_head_in_the_head_file(
    tmp_path: Path, key: AuditKey
) -> None:
    """Heads are written under the write lock, so the file always ends at the chain's head."""
    head_file = tmp_path / "heads" / "audit.head"
    log = AuditLog(tmp_path / "ledger.db", key=key, head_file=head_file)

    def writer(name: str) -> None:
        for i in range(10):
            log.append(name, "test", str(i))

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = log.verify(expect_head=read_head_file(head_file, source="test"))
    assert verdict.ok and verdict.rows == 40 and verdict.anchor == "row 40 (the head)"
    assert head_file.read_text() == f"40:{verdict.head}\n"


def test_an_old_head_still_matches_after_later_appends(tmp_path: Path) -> None:
    """A head saved earlier is found further down the chain; a made-up one is not."""
    log = AuditLog(tmp_path / "ledger.db")
    first = log.append("cli:ops", "key.create", "a")
    log.append("cli:ops", "key.create", "b")
    assert log.verify(expect_head=Head(1, first.hash)).anchor == "row 1 (1 rows appended since)"
    assert log.verify(expect_head=Head(None, first.hash)).ok
    assert "not the expected head" in log.verify(expect_head=Head(2, first.hash)).reason
    assert "no row of the chain" in log.verify(expect_head=Head(None, "ab" * 32)).reason


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (None, 0o600, "does not exist"),
        ("k" * 64, 0o640, "open to other users (mode 0640)"),
        ("short", 0o600, "the audit key is 5 bytes; at least 32"),
    ],
)
def test_a_bad_key_file_is_refused_naming_the_config_key(
    tmp_path: Path, content: str | None, mode: int, message: str
) -> None:
    """Missing, readable by others, or too short: a ConfigError naming ledger.audit_key_file."""
    path = tmp_path / "audit.key"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        read_audit_key(path)
    assert error.value.field == "ledger.audit_key_file"


def test_a_new_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    """`frugal audit new-key` writes mode 600 and refuses an existing file."""
    path = tmp_path / "audit.key"
    key = write_new_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_audit_key(path) == key
    with pytest.raises(ConfigError, match="a key is never overwritten"):
        write_new_key(path)
    assert read_audit_key(path) == key


def test_verify_reading_the_head_file_during_appends_never_sees_a_head_ahead_of_the_rows(
    tmp_path: Path, key: AuditKey
) -> None:
    """An append writes the head file just before it commits; verify reads it under the lock."""
    head_file = tmp_path / "audit.head"
    log = AuditLog(tmp_path / "ledger.db", key=key, head_file=head_file)
    log.append("server", "model.load", "digits:1")
    done = threading.Event()

    def writer() -> None:
        for i in range(60):
            log.append("cli:ops", "test", str(i))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reasons = []
    for _ in range(200):
        verdict = log.verify(expect_head=functools.partial(read_head_file, head_file, source="t"))
        reasons.append(verdict.reason)
        if done.is_set():
            break
    thread.join()
    assert reasons and set(reasons) == {""}, [r for r in reasons if r][:3]
    assert log.verify(expect_head=read_head_file(head_file, source="t")).rows == 61
