"""The audit log: who changed what, in a hash chain that shows any edit or deletion.

Each row stores the hash of the row before it and its own hash over (seq, ts, actor, action,
target, detail, prev_hash). Editing a row breaks its own hash; deleting one breaks the link of
the next (and leaves a gap in ``seq``). The table lives in the ledger's SQLite file; appends take
the write lock (BEGIN IMMEDIATE), so the server and the CLI can append at the same time and the
chain stays one chain.

A chain inside the file it protects can be rewritten by whoever can write that file: edit a row,
re-hash every row after it, or drop the table. So the chain is anchored outside it
(``frugal/access/anchor.py``): with ``ledger.audit_key_file`` each row's hash is an HMAC-SHA256
under a key that is not in the ledger, and every append exports the new head (``SEQ:HASH``) to the
log and, with ``ledger.audit_head_file``, to a file, which ``frugal audit verify --expect-head``
checks. Each row records its ``scheme`` (``sha256``, or ``hmac-sha256:<key id>``), so chains
written before a key was configured stay verifiable; once a row is keyed, every later one is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import hmac
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from frugal.access.anchor import (
    HEAD_FIELD,
    KEY_FIELD,
    AuditKey,
    Head,
    read_audit_key,
    read_head_file,
    write_head_file,
)
from frugal.config import LedgerConfig
from frugal.errors import ConfigError, FrugalError
from frugal.sqlite_locks import use_wal

log = logging.getLogger("frugal.audit")

GENESIS = "0" * 64
UNKEYED = "sha256"  # the scheme of a row hashed with the public formula
KEYED_PREFIX = "hmac-sha256:"
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  target TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
  scheme TEXT NOT NULL DEFAULT 'sha256'
);
"""
_COLUMNS = "seq, ts, actor, action, target, detail, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: float
    actor: str  # a key's name, "cli:<os user>", "server" or "loopback"
    action: str  # e.g. key.create, key.revoke, model.load, cache.invalidate
    target: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str
    scheme: str = UNKEYED  # or "hmac-sha256:<key id>"


@dataclass(frozen=True, slots=True)
class Verdict:
    rows: int
    head: str  # the last row's hash: keep a copy elsewhere to detect truncation
    head_seq: int = 0
    keyed_rows: int = 0
    broken_seq: int | None = None  # the first row that does not fit, where one does not
    reason: str = ""  # why the chain fails; empty when it holds
    anchor: str = ""  # where the expected head was found, when one was given
    expected_head: Head | None = None  # the head checked, once read

    @property
    def ok(self) -> bool:
        return not self.reason


def row_hash(seq: int, ts: float, actor: str, action: str, target: str, detail: str,
             prev_hash: str, key: bytes | None = None) -> str:  # fmt: skip
    """The public SHA-256 formula, or with ``key`` the HMAC-SHA256 of the same bytes."""
    payload = orjson.dumps([seq, repr(ts), actor, action, target, detail, prev_hash])
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


class AuditLog:
    def __init__(
        self, path: Path, *, key: AuditKey | None = None, head_file: Path | None = None
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.head_file = head_file

    @classmethod
    def from_config(cls, ledger: LedgerConfig) -> AuditLog:
        """The ledger's audit log with the anchors its config names (the key is read now)."""
        key = read_audit_key(ledger.audit_key_file) if ledger.audit_key_file else None
        return cls(ledger.path, key=key, head_file=ledger.audit_head_file)

    def _connect(self) -> sqlite3.Connection:
        """For appends: creates the table, and adds ``scheme`` to one written before it existed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            use_wal(db)
            db.executescript(SCHEMA)
            if "scheme" not in _columns(db):
                db.execute(f"ALTER TABLE audit ADD COLUMN scheme TEXT NOT NULL DEFAULT '{UNKEYED}'")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a frugal ledger: {exc}", file=str(self.path)) from None
        return db

    def _read(
        self, sql: str, args: tuple[Any, ...] = (), *, held: Callable[[], object] | None = None
    ) -> list[tuple[Any, ...]] | None:
        """Rows of the audit table (``scheme`` last), or None when the table is missing.

        Never creates the file or the table: a dropped table must stay visible as missing.
        ``held`` runs first while appends are held off (the write lock, where the file can be
        written), so what it reads, such as the head file, agrees with the rows."""
        if not self.path.is_file():
            hint = "run `frugal serve` first, or name the ledger with --ledger"
            raise ConfigError("no ledger here", file=str(self.path), hint=hint)
        try:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            try:
                if held is not None:
                    # A read-only file (an auditor's copy) takes no write lock: read without it.
                    with contextlib.suppress(sqlite3.OperationalError):
                        db.execute("BEGIN IMMEDIATE")
                    held()
                columns = _columns(db)
                if not columns:
                    return None
                scheme = "scheme" if "scheme" in columns else f"'{UNKEYED}'"
                return db.execute(sql.format(columns=f"{_COLUMNS}, {scheme}"), args).fetchall()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a frugal ledger: {exc}", file=str(self.path)) from None

    def append(self, actor: str, action: str, target: str, **detail: Any) -> AuditEntry:
        """Blocking (a short write); call it from a thread on the serving path."""
        text = orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
        scheme = self.key.scheme if self.key is not None else UNKEYED
        secret = self.key.secret if self.key is not None else None
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            last = db.execute(
                "SELECT seq, hash, scheme FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if last is not None:
                self._check_extends(last[0], last[2])
            before = Head(last[0], last[1]) if last else None
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            ts = time.time()
            digest = row_hash(seq, ts, actor, action, target, text, prev, key=secret)
            db.execute(f"INSERT INTO audit ({_COLUMNS}, scheme) VALUES (?,?,?,?,?,?,?,?,?)",
                       (seq, ts, actor, action, target, text, prev, digest, scheme))  # fmt: skip
            head = Head(seq, digest)
            # Written while this process holds the write lock, so heads reach the file in the
            # chain's order even when the server and the CLI append at once.
            exported = self._export_head(before, head)
            try:
                db.execute("COMMIT")
            except BaseException:
                if exported and self.head_file is not None:
                    with contextlib.suppress(OSError):
                        write_head_file(self.head_file, before)
                raise
        finally:
            db.close()
        log.info("audit head %s after %s %s by %s", head, action, target, actor)
        return AuditEntry(seq, ts, actor, action, target, detail, prev, digest, scheme)

    def check_append(self) -> None:
        """Raise now what ``append`` would: for a command that changes something, then audits it."""
        if not self.path.is_file():
            return  # the first append creates the ledger
        rows = self._read("SELECT {columns} FROM audit ORDER BY seq DESC LIMIT 1")
        if rows:
            self._check_extends(rows[0][0], rows[0][8])

    def _check_extends(self, last_seq: int, last_scheme: str) -> None:
        """Refuse to append a row the chain's own rule would reject (unkeyed after keyed)."""
        if last_scheme == UNKEYED or (self.key is not None and last_scheme == self.key.scheme):
            return
        if self.key is None:
            raise ConfigError(
                f"the audit chain is keyed (row {last_seq}: {last_scheme}); appending to it "
                "needs its key", field=KEY_FIELD, file=str(self.path),
                hint="set ledger.audit_key_file to the key file the chain was written with",
            )  # fmt: skip
        raise ConfigError(
            f"the audit chain's newest row ({last_seq}) is keyed with key "
            f"{last_scheme.removeprefix(KEYED_PREFIX)}, not with this key ({self.key.id})",
            field=KEY_FIELD, file=str(self.path),
            hint="use the key file the chain was written with",
        )  # fmt: skip

    def _export_head(self, before: Head | None, head: Head) -> bool:
        """Write ``head`` to the head file, unless that file no longer names the row before it.

        A file naming another row means the chain changed without it (rows deleted or rewritten,
        the table dropped, or an append by a process not configured with the file): it is then
        left as it is, as the evidence ``verify --expect-head`` shows, and the log says so."""
        if self.head_file is None:
            return False
        try:
            current = read_head_file(self.head_file, source=HEAD_FIELD)
        except FrugalError as exc:
            log.error("audit head file %s is unreadable, left as it is: %s", self.head_file, exc)
            return False
        if current is not None and current != before:
            log.error(
                "audit head file %s holds %s, but the chain's newest row before this append was "
                "%s: the chain changed without the file; left as it is (check it with `frugal "
                "audit verify --expect-head @%s`)", self.head_file, current, before or "none",
                self.head_file,
            )  # fmt: skip
            return False
        try:
            write_head_file(self.head_file, head)
        except OSError as exc:
            log.error("cannot write audit head file %s: %s", self.head_file, exc)
            return False
        return True

    def entries(self, *, since: float | None = None) -> list[AuditEntry]:
        rows = self._read("SELECT {columns} FROM audit WHERE ts >= ? ORDER BY seq", (since or 0.0,))
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _detail(r[5]), r[6], r[7], r[8])
                for r in rows or []]  # fmt: skip

    def verify(self, *, expect_head: Head | Callable[[], Head | None] | None = None) -> Verdict:
        """Walk the chain from the first row; the first row that does not fit is named.

        ``expect_head`` may be a function (reading a head file): it is called while appends are
        held off, since an append writes the head file just before it commits. Raises
        ConfigError when keyed rows cannot be checked (no key, or another key's rows): the
        verdict then would be a guess."""
        expected: list[Head | None] = [None if callable(expect_head) else expect_head]

        def read_head() -> None:
            if callable(expect_head):
                expected[0] = expect_head()

        rows = self._read("SELECT {columns} FROM audit ORDER BY seq", held=read_head)
        expect_head = expected[0]
        if rows is None:
            return Verdict(0, GENESIS, reason="the ledger has no audit table (it was dropped, or "
                           "this file never held an audit log)")  # fmt: skip
        walk = _Walk(self.key)
        broken = walk.run(rows)
        if broken is not None:
            return broken
        verdict = Verdict(len(rows), walk.prev, walk.last_seq, walk.keyed)
        if self.key is not None and rows and walk.keyed == 0:
            return _fail(verdict, f"none of the {len(rows)} rows is keyed, yet a key was given: "
                         "the chain was rewritten without the key, or nothing was appended "
                         "since the key was configured")  # fmt: skip
        if expect_head is not None:
            verdict = _check_head(verdict, expect_head, {r[0]: r[7] for r in rows})
            if not verdict.ok:
                return verdict
        if walk.unchecked:
            first, last = walk.unchecked[0], walk.unchecked[-1]
            span = f"row {first} is" if first == last else f"rows {first}-{last} are"
            if self.key is None:
                raise ConfigError(
                    f"{span} keyed (HMAC-SHA256, key {walk.key_id}): checking them needs "
                    "the key", field=KEY_FIELD, file=str(self.path),
                    hint="pass --key-file, or set ledger.audit_key_file in the config",
                )  # fmt: skip
            raise ConfigError(
                f"{span} keyed with key {walk.key_id}, but the key given is key "
                f"{self.key.id}", field=KEY_FIELD, file=str(self.path),
                hint="give the key file the chain was written with (a rewritten scheme column "
                "shows the same way)",
            )  # fmt: skip
        return verdict


class _Walk:
    """One pass over the rows: links, numbering, hashes, and the keyed-after rule."""

    def __init__(self, key: AuditKey | None) -> None:
        self.key = key
        self.prev = GENESIS
        self.last_seq = 0
        self.keyed = 0
        self.key_id: str | None = None
        self.unchecked: list[int] = []  # keyed rows this key cannot check

    def run(self, rows: list[tuple[Any, ...]]) -> Verdict | None:
        for seq, ts, actor, action, target, detail, prev_hash, digest, scheme in rows:
            problem = self._problem(seq, prev_hash, scheme)
            if problem is None:
                checkable, secret = self._key_for(seq, scheme)
                if checkable and row_hash(
                    seq, ts, actor, action, target, detail, prev_hash, key=secret
                ) != digest:  # fmt: skip
                    problem = "was edited: its hash does not match"
            if problem is not None:
                return Verdict(len(rows), self.prev, self.last_seq, self.keyed, seq, problem)
            self.prev, self.last_seq = digest, seq
        return None

    def _problem(self, seq: int, prev_hash: str, scheme: str) -> str | None:
        expected = self.last_seq + 1
        if seq != expected:
            return (f"row {expected}" if seq == expected + 1 else
                    f"rows {expected}-{seq - 1}") + f" deleted before row {seq}"  # fmt: skip
        if prev_hash != self.prev:
            return "does not link to the row before it"
        if scheme == UNKEYED:
            if self.keyed:
                return "is unkeyed after keyed rows: rewritten by someone without the key"
            return None
        if not scheme.startswith(KEYED_PREFIX):
            return f"names an unknown hash scheme {scheme[:40]!r}"
        key_id = scheme.removeprefix(KEYED_PREFIX)
        if self.key_id is not None and key_id != self.key_id:
            return f"is keyed with key {key_id[:16]}, the rows before it with {self.key_id}"
        self.key_id = key_id
        self.keyed += 1
        return None

    def _key_for(self, seq: int, scheme: str) -> tuple[bool, bytes | None]:
        """(whether this row can be checked, the HMAC key to check it with: None if unkeyed)."""
        if scheme == UNKEYED:
            return True, None
        if self.key is None or self.key.scheme != scheme:
            self.unchecked.append(seq)
            return False, None
        return True, self.key.secret


def _check_head(verdict: Verdict, expect: Head, hashes: dict[int, str]) -> Verdict:
    """The expected head must be a row of the chain: its head, or a row before newer appends."""
    verdict = dataclasses.replace(verdict, expected_head=expect)
    if expect.seq is not None:
        found = hashes.get(expect.seq)
        if found is None:
            ends = verdict.head_seq
            return _fail(verdict, f"the expected head {expect} is not in the chain, which ends "
                         f"at row {ends}: rows were deleted, or the table replaced")  # fmt: skip
        if found != expect.hash:
            return _fail(verdict, f"row {expect.seq} has hash {found}, not the expected head's "
                         f"{expect.hash}: the chain was rewritten")  # fmt: skip
        seq = expect.seq
    else:
        matches = [s for s, h in hashes.items() if h == expect.hash]
        if not matches:
            return _fail(verdict, f"no row of the chain has the expected head hash {expect.hash}: "
                         "rows were deleted or rewritten")  # fmt: skip
        seq = matches[0]
    after = verdict.head_seq - seq
    anchor = f"row {seq}" + (f" ({after} rows appended since)" if after else " (the head)")
    return dataclasses.replace(verdict, anchor=anchor)


def _fail(verdict: Verdict, reason: str) -> Verdict:
    return dataclasses.replace(verdict, reason=reason)


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(audit)")}


def _detail(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"unreadable": text}
    return value if isinstance(value, dict) else {"value": value}


__all__ = ["GENESIS", "UNKEYED", "AuditEntry", "AuditLog", "Verdict", "cli_actor", "row_hash"]
