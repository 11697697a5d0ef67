"""API keys: the secret is shown once, stored only as a hash, and checked in constant time."""

from __future__ import annotations

import hmac
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from frugal.access import SECRET_PREFIX, KeyRing, KeyStore, KeyWatcher, digest_of
from frugal.errors import ConfigError, Conflict, InvalidInput, NotFound


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.db")


def test_a_secret_is_frg_and_32_random_bytes(store: KeyStore) -> None:
    """`frg_` + url-safe base64 of 32 bytes (43 characters); two keys never share one."""
    _, first = store.create("a", "user")
    _, second = store.create("b", "user")
    assert first.startswith(SECRET_PREFIX) and len(first) == len(SECRET_PREFIX) + 43
    assert set(first[4:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert first != second


def test_only_the_hash_is_stored(store: KeyStore) -> None:
    """The database file holds SHA-256 of the secret, and the secret appears nowhere in it."""
    key, secret = store.create("team-a", "user", tier="pro")
    raw = store.path.read_bytes() + (store.path.parent / "keys.db-wal").read_bytes()
    assert secret.encode() not in raw and secret[4:].encode() not in raw
    with sqlite3.connect(store.path) as db:
        (digest,) = db.execute("SELECT digest FROM keys WHERE name = 'team-a'").fetchone()
    assert digest == digest_of(secret) == key.digest


def test_ring_finds_the_key_of_a_secret_and_nothing_else(store: KeyStore) -> None:
    _key, secret = store.create("team-a", "user")
    store.create("team-b", "viewer")
    ring = store.ring()
    found = ring.authenticate(secret)
    assert found is not None and found.name == "team-a" and found.role == "user"
    assert ring.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert ring.authenticate("") is None and ring.authenticate("frg_") is None


def test_ring_compares_with_hmac_compare_digest(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full digest comparison goes through the constant-time compare, every time."""
    _, secret = store.create("team-a", "user")
    ring = store.ring()
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module keys.py calls through
    assert ring.authenticate(secret) is not None
    assert calls == [(digest_of(secret), digest_of(secret))]


def test_rotate_gives_a_new_secret_and_the_old_one_stops(store: KeyStore) -> None:
    _, old = store.create("team-a", "user", rps=5, budget_usd_day=1.0)
    rotated, new = store.rotate("team-a")
    ring = store.ring()
    assert ring.authenticate(old) is None
    found = ring.authenticate(new)
    assert found is not None and found.rps == 5 and found.budget_usd_day == 1.0
    assert rotated.rotated_at is not None


def test_revoked_keys_leave_the_ring_and_keep_their_name(store: KeyStore) -> None:
    _, secret = store.create("team-a", "user")
    store.revoke("team-a")
    assert store.ring().authenticate(secret) is None
    assert [k.name for k in store.list(include_revoked=False)] == []
    assert store.list()[0].revoked_at is not None
    with pytest.raises(Conflict, match="exists"):
        store.create("team-a", "user")
    with pytest.raises(InvalidInput, match="revoked"):
        store.rotate("team-a")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "", "role": "user"}, "name"),
        ({"name": "has space", "role": "user"}, "name"),
        ({"name": "ok", "role": "root"}, "role"),
        ({"name": "ok", "role": "user", "rps": 0}, "rps"),
        ({"name": "ok", "role": "user", "budget_usd_day": -1.0}, "budget_usd_day"),
    ],
)
def test_bad_key_fields_are_named(store: KeyStore, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        store.create(**kwargs)
    assert info.value.field == field


def test_unknown_key_and_bad_file_are_clear(store: KeyStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no key named 'ghost'"):
        store.revoke("ghost")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a frugal keys database"):
        KeyStore(junk).list()


def test_watcher_sees_changes_made_by_another_connection(store: KeyStore) -> None:
    """The server polls data_version: the CLI's create and revoke are both seen."""
    watcher = KeyWatcher(store)
    try:
        assert watcher.changed()  # the first poll always loads
        assert not watcher.changed()
        store.create("team-a", "user")
        assert watcher.changed()
        assert not watcher.changed()
        store.revoke("team-a")
        assert watcher.changed()
    finally:
        watcher.close()


def test_watcher_close_waits_for_polls_in_other_threads(store: KeyStore) -> None:
    """Shutdown closes the watcher while a cancelled poll may still run in a worker thread.

    Closing a sqlite3 connection under a running statement crashed CI with SIGSEGV; now close
    waits for the poll, and polls after close answer "unchanged" instead of raising.
    """
    watcher = KeyWatcher(store)
    errors: list[BaseException] = []
    started = threading.Barrier(5)

    def poll() -> None:
        started.wait()
        try:
            for _ in range(2000):
                watcher.changed()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    watcher.close()
    for thread in threads:
        thread.join()
    assert errors == []
    assert watcher.changed() is False
    watcher.close()  # twice is harmless


def test_an_empty_ring_refuses_everything() -> None:
    assert KeyRing().authenticate("frg_anything") is None
    assert KeyRing().count == 0
