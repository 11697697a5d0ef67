"""API keys: created once, shown once, stored only as a hash, checked in constant time.

A secret is ``frg_`` + 32 random bytes (url-safe base64). It has 256 bits of entropy, so a plain
SHA-256 is enough to store it: a slow password hash protects guessable secrets, and this one is
not guessable. The database (SQLite, beside the ledger) holds the hash, the key's name, role,
tier and limits; the secret itself is printed once by ``frugal keys create`` and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import orjson

from frugal.errors import ConfigError, Conflict, InvalidInput, NotFound
from frugal.sqlite_locks import use_wal

Role = Literal["user", "viewer", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
SECRET_PREFIX = "frg_"
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# A key's limits, checked at creation (docs/security.md). Past the top of each range a limit
# means "unlimited", which leaving it out already says; the bounds keep every stored value one
# SQLite holds (INTEGER is 64 bits) and one the rate limiter and Retry-After can work with.
RPS_MIN = 0.001  # one request per 1000 s: the rate bucket refills within Retry-After's day
RPS_MAX = 1_000_000.0
BUDGET_USD_DAY_MAX = 1_000_000_000.0
TOKENS_DAY_MAX = 10**15
TIER_MAX_CHARS = 64

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, tier TEXT, endpoints TEXT, rps REAL,
  budget_usd_day REAL, tokens_day INTEGER, digest BLOB NOT NULL UNIQUE,
  created_at REAL NOT NULL, rotated_at REAL, revoked_at REAL
);
"""
_COLUMNS = (
    "name, role, tier, endpoints, rps, budget_usd_day, tokens_day, digest, created_at, "
    "rotated_at, revoked_at"
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key's identity and limits; ``digest`` is SHA-256 of the secret, never the secret."""

    name: str
    role: Role
    digest: bytes
    created_at: float
    tier: str | None = None
    endpoints: tuple[str, ...] | None = None  # None: every endpoint
    rps: float | None = None  # requests per second; None: unlimited
    budget_usd_day: float | None = None
    tokens_day: int | None = None
    rotated_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, object]:
        """What listings show: everything but the digest."""
        return {
            "name": self.name, "role": self.role, "tier": self.tier,
            "endpoints": list(self.endpoints) if self.endpoints is not None else None,
            "rps": self.rps, "budget_usd_day": self.budget_usd_day, "tokens_day": self.tokens_day,
            "created_at": self.created_at, "rotated_at": self.rotated_at,
            "revoked_at": self.revoked_at,
        }  # fmt: skip


def new_secret() -> str:
    import secrets  # only here: the one place that makes secrets

    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    """The active keys of a running server, looked up by secret in constant time.

    The index holds only the first 4 bytes of each digest, so a lookup narrows to (almost
    always) one candidate and ``hmac.compare_digest`` decides on the full 32 bytes: no early
    exit on the first differing byte, for a secret or for its hash.
    """

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._by_prefix: dict[bytes, list[ApiKey]] = {}
        self.count = 0
        self.active: list[ApiKey] = []  # for budgets' metrics
        for key in keys:
            if key.active:
                self.active.append(key)
                self._by_prefix.setdefault(key.digest[:4], []).append(key)
                self.count += 1

    def authenticate(self, secret: str) -> ApiKey | None:
        digest = digest_of(secret)
        found = None
        for key in self._by_prefix.get(digest[:4], ()):
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found


class KeyStore:
    """The keys database: one short-lived connection per operation, safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=10.0)
            use_wal(db)
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a frugal keys database: {exc}", file=str(self.path)) from None
        return db

    def create(
        self,
        name: str,
        role: str,
        *,
        tier: str | None = None,
        endpoints: Sequence[str] | None = None,
        rps: float | None = None,
        budget_usd_day: float | None = None,
        tokens_day: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret; the secret exists only in the return value. Limits outside
        their bounds (RPS_MIN..RPS_MAX and the others above) are InvalidInput naming them."""
        _check_name(name)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        if tier is not None and not (isinstance(tier, str) and len(tier) <= TIER_MAX_CHARS):
            raise InvalidInput(f"tier must be a string of at most {TIER_MAX_CHARS} characters",
                               field="tier")  # fmt: skip
        _check_limit("rps", rps, RPS_MIN, RPS_MAX, "requests/s")
        _check_limit("budget_usd_day", budget_usd_day, 0.0, BUDGET_USD_DAY_MAX, "dollars a day")
        _check_limit("tokens_day", tokens_day, 1, TOKENS_DAY_MAX, "tokens a day")
        if tokens_day is not None and tokens_day != int(tokens_day):
            raise InvalidInput("tokens_day must be a whole number", field="tokens_day")
        secret = new_secret()
        key = ApiKey(
            name=name, role=role, digest=digest_of(secret), created_at=time.time(), tier=tier,
            endpoints=tuple(endpoints) if endpoints is not None else None,
            rps=float(rps) if rps is not None else None,
            budget_usd_day=float(budget_usd_day) if budget_usd_day is not None else None,
            tokens_day=int(tokens_day) if tokens_day is not None else None,
        )  # fmt: skip
        with self._connect() as db:
            if db.execute("SELECT 1 FROM keys WHERE name = ?", (name,)).fetchone():
                raise Conflict(
                    f"a key named {name!r} exists (revoked keys keep their name)",
                    hint="pick another name, or `frugal keys rotate` it for a new secret",
                )
            db.execute(f"INSERT INTO keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       _row_of(key))  # fmt: skip
        return key, secret

    def get(self, name: str) -> ApiKey:
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no key named {name!r}", hint="`frugal keys list` shows them")
        return _key_of(row)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created_at").fetchall()
        keys = [_key_of(r) for r in rows]
        return keys if include_revoked else [k for k in keys if k.active]

    def revoke(self, name: str) -> ApiKey:
        key = self.get(name)
        if not key.active:
            return key
        with self._connect() as db:
            db.execute("UPDATE keys SET revoked_at = ? WHERE name = ?", (time.time(), name))
        return self.get(name)

    def rotate(self, name: str) -> tuple[ApiKey, str]:
        """A new secret for the same name, role and limits; the old secret stops working."""
        key = self.get(name)
        if not key.active:
            raise InvalidInput(f"key {name!r} is revoked", field="name",
                               hint="create a new key instead")  # fmt: skip
        secret = new_secret()
        with self._connect() as db:
            db.execute("UPDATE keys SET digest = ?, rotated_at = ? WHERE name = ?",
                       (digest_of(secret), time.time(), name))  # fmt: skip
        return self.get(name), secret

    def ring(self) -> KeyRing:
        return KeyRing(self.list(include_revoked=False))


class KeyWatcher:
    """Reloads the ring when another connection (the CLI, another worker) changed the keys.

    ``PRAGMA data_version`` changes exactly when another connection commits, so a poll is a
    read of shared memory, not of the table.
    """

    def __init__(self, store: KeyStore) -> None:
        store._connect().close()  # creates the file and table if they are not there yet
        # Polled from worker threads (asyncio.to_thread). Cancelling the awaiting task does not
        # stop such a thread, so close() can arrive mid-poll: closing a sqlite3 connection while
        # another thread runs a statement on it crashes the process (seen: SIGSEGV in CI). The
        # lock makes close wait for the poll, and a poll after close answers "unchanged".
        self._db: sqlite3.Connection | None = sqlite3.connect(
            store.path, timeout=10.0, check_same_thread=False
        )
        self._lock = threading.Lock()
        self._version = -1

    def changed(self) -> bool:
        with self._lock:
            if self._db is None:
                return False
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return False
        self._version = version
        return True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _check_limit(field: str, value: float | None, low: float, high: float, unit: str) -> None:
    """``value`` in (0, high] and at least ``low``; NaN, infinities and booleans are refused."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field} must be a number", field=field)
    if not (value > 0 and low <= value <= high):  # False for NaN
        span = f"from {low:g} to {high:g}" if low > 0 else f"over 0 and at most {high:g}"
        raise InvalidInput(f"{field} must be {span} {unit}", field=field)


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise InvalidInput("a key name is 1-64 letters, digits, '_', '.' or '-'", field="name")


def _row_of(key: ApiKey) -> tuple[object, ...]:
    endpoints = orjson.dumps(list(key.endpoints)).decode() if key.endpoints is not None else None
    return (key.name, key.role, key.tier, endpoints, key.rps, key.budget_usd_day, key.tokens_day,
            key.digest, key.created_at, key.rotated_at, key.revoked_at)  # fmt: skip


def _key_of(row: tuple[Any, ...]) -> ApiKey:
    name, role, tier, endpoints, rps, usd, tokens, digest, created, rotated, revoked = row
    return ApiKey(
        name=str(name), role=role, digest=bytes(digest), created_at=float(created),
        tier=tier if tier is None else str(tier),
        endpoints=tuple(orjson.loads(endpoints)) if isinstance(endpoints, str) else None,
        rps=rps, budget_usd_day=usd, tokens_day=tokens, rotated_at=rotated, revoked_at=revoked,
    )  # fmt: skip


__all__ = [
    "BUDGET_USD_DAY_MAX",
    "ROLES",
    "RPS_MAX",
    "RPS_MIN",
    "SECRET_PREFIX",
    "TIER_MAX_CHARS",
    "TOKENS_DAY_MAX",
    "ApiKey",
    "KeyRing",
    "KeyStore",
    "KeyWatcher",
    "Role",
    "digest_of",
    "new_secret",
]
