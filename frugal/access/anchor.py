"""What anchors the audit chain outside the ledger file: a secret key, and the exported head.

Anyone who can write the ledger can edit a row and re-hash every row after it with the public
formula, or drop the table. Two things they cannot reach stop that: an HMAC key kept in a file of
its own (``ledger.audit_key_file``), without which a keyed row cannot be re-hashed, and a copy of
the chain's newest row (``SEQ:HASH``, the head) written to the log and to ``ledger.audit_head_file``
on every append, which shows deleted newest rows and a dropped or replaced table.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from frugal.errors import ConfigError, InvalidInput

KEY_FIELD = "ledger.audit_key_file"
HEAD_FIELD = "ledger.audit_head_file"
MIN_KEY_BYTES = 32  # an HMAC-SHA256 key shorter than its hash weakens it
MAX_KEY_BYTES = 4096  # a key file is a line of hex; anything bigger is the wrong file
_KEY_ID_LABEL = b"frugal audit key id"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The HMAC-SHA256 key of a keyed chain; ``id`` names it in each row without revealing it."""

    secret: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    @property
    def scheme(self) -> str:
        """What a row keyed with it records in its ``scheme`` column."""
        return f"hmac-sha256:{self.id}"


@dataclass(frozen=True, slots=True)
class Head:
    """A row of the chain by number and hash; written and read as ``SEQ:HASH``."""

    seq: int | None  # None: a bare hash, found wherever it is in the chain
    hash: str

    def __str__(self) -> str:
        return self.hash if self.seq is None else f"{self.seq}:{self.hash}"


def read_audit_key(path: Path, *, field: str = KEY_FIELD) -> AuditKey:
    """The key in ``path``; refused if missing, unreadable, readable by others, or too short.

    ``field`` names where the path came from in errors (the config key, or a CLI option)."""
    hint = f"create one with `frugal audit new-key {path}` (docs/security.md)"
    try:
        # O_NONBLOCK: a FIFO named by mistake fails the checks below instead of hanging here.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError("the audit key file does not exist", field=field, file=str(path),
                          hint=hint) from None  # fmt: skip
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key file: {exc.strerror}", field=field,
                          file=str(path)) from None  # fmt: skip
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError("the audit key file is not a regular file", field=field,
                              file=str(path))  # fmt: skip
        if os.name == "posix" and mode & 0o077:
            raise ConfigError(
                f"the audit key file is open to other users (mode {stat.S_IMODE(mode):04o})",
                field=field, file=str(path), hint=f"chmod 600 {path}",
            )  # fmt: skip
        secret = f.read(MAX_KEY_BYTES + 1).strip()
    if len(secret) > MAX_KEY_BYTES:
        raise ConfigError(f"the audit key file holds over {MAX_KEY_BYTES} bytes: not a key file",
                          field=field, file=str(path), hint=hint)  # fmt: skip
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"the audit key is {len(secret)} bytes; at least {MIN_KEY_BYTES}",
                          field=field, file=str(path), hint=hint)  # fmt: skip
    return AuditKey(secret)


def write_new_key(path: Path) -> AuditKey:
    """A fresh random key in a new file only its owner can read (never overwrites one)."""
    secret = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            "exists already; a key is never overwritten (rows keyed with it could no longer be "
            "verified)", file=str(path),
        ) from None  # fmt: skip
    except OSError as exc:
        raise ConfigError(f"cannot create the key file: {exc.strerror}", file=str(path)) from None
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return AuditKey(secret.encode())


def parse_head(text: str, *, source: str) -> Head:
    """``SEQ:HASH``, ``SEQ HASH`` or a bare ``HASH`` (64 hex digits); ``source`` names the input."""
    parts = text.strip().replace(":", " ").split()
    seq_text, digest = (None, parts[0]) if len(parts) == 1 else (None, "")
    if len(parts) == 2:
        seq_text, digest = parts
    if not _HEX64.match(digest.lower()):
        raise InvalidInput(
            f"{source}: expected SEQ:HASH or a 64-hex-digit HASH, got {text.strip()[:80]!r}",
            field=source,
        )
    seq = None
    if seq_text is not None:
        if not seq_text.isdigit() or int(seq_text) < 1 or len(seq_text) > 18:
            raise InvalidInput(f"{source}: the row number must be a positive integer, got "
                               f"{seq_text[:20]!r}", field=source)  # fmt: skip
        seq = int(seq_text)
    return Head(seq, digest.lower())


def read_head_file(path: Path, *, source: str) -> Head | None:
    """The head kept in ``path``, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:1000]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the head file: {exc.strerror}", field=source,
                          file=str(path)) from None  # fmt: skip
    return parse_head(text, source=source)


def write_head_file(path: Path, head: Head | None) -> None:
    """Replace ``path`` atomically with ``head`` (None: remove it), so a reader never sees half."""
    if head is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(f"{head}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


__all__ = [
    "HEAD_FIELD",
    "KEY_FIELD",
    "MIN_KEY_BYTES",
    "AuditKey",
    "Head",
    "parse_head",
    "read_audit_key",
    "read_head_file",
    "write_head_file",
    "write_new_key",
]
