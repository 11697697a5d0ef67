"""The Redis store against a real redis-server: round trips, TTLs, namespaces, failing open."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("redis", reason="the redis package is not installed (frugal[redis])")

import redis.asyncio

from frugal.cache.redis import RedisStore
from frugal.cache.store import CacheEntry, CacheStore
from tests.cache.conftest import RedisServer, fake_clock
from tests.cache.conftest import cache_entry as entry
from tests.waiting import eventually_async

KEY = b"digits|" + bytes(range(20))
POLL_LIMIT_S = 1.0

MakeStore = Callable[..., RedisStore]


@pytest.fixture
async def make_store(redis_url: str) -> AsyncIterator[MakeStore]:
    """``make(url=redis_url, namespace=<unique>, **options)``; every store is closed after."""
    stores: list[RedisStore] = []

    def make(url: str = redis_url, **options: Any) -> RedisStore:
        options.setdefault("namespace", f"test-{uuid.uuid4().hex[:12]}")
        store = RedisStore(url, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client to the session's server, to look behind the store."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def test_redis_store_is_a_cache_store() -> None:
    """RedisStore meets the CacheStore protocol without connecting anywhere."""
    store = RedisStore("redis://127.0.0.1:1/0", namespace="t")
    assert isinstance(store, CacheStore)


async def test_round_trip_returns_values_as_json(make_store: MakeStore) -> None:
    """An entry comes back with every field; numpy values come back as their JSON lists."""
    store = make_store()
    arrays = {"label": np.int64(7), "probabilities": np.array([0.25, 0.75], dtype=np.float32)}
    await store.put(KEY, entry(arrays), ttl_s=60)
    assert await store.get(KEY) == entry({"label": 7, "probabilities": [0.25, 0.75]})

    nested = {"label": "cat", "scores": [[1, 2.5], {"top": None}], "ok": True}
    plain = CacheEntry(nested, None, "clf:2", 0.0, 1.5, "animals")
    await store.put(b"animals|x", plain, ttl_s=60)
    assert await store.get(b"animals|x") == plain
    assert await store.get(b"animals|never") is None
    assert store.stats().errors == 0


async def test_entry_expires_by_redis_ttl(make_store: MakeStore, raw: redis.asyncio.Redis) -> None:
    """Redis holds the TTL in milliseconds and drops the entry once it passes."""
    store = make_store()
    await store.put(KEY, entry(), ttl_s=0.05)
    [name] = await raw.keys(f"{store.namespace}:*")
    assert 0 < await raw.pttl(name) <= 50

    async def expired() -> bool:  # a TTL can only be observed by waiting for it
        return await store.get(KEY) is None

    await eventually_async(expired, "the entry's 50 ms TTL to pass", timeout_s=POLL_LIMIT_S)
    assert store.stats().errors == 0


async def test_put_without_ttl_removes_the_old_entry(make_store: MakeStore) -> None:
    """A put with a TTL of 0 stores nothing and drops what the key held."""
    store = make_store()
    await store.put(KEY, entry(), ttl_s=60)
    await store.put(KEY, entry(2), ttl_s=0)
    assert await store.get(KEY) is None


async def test_namespaces_never_share_keys(make_store: MakeStore) -> None:
    """Stores in different namespaces, even one prefixing the other, see only their own keys."""
    outer = make_store(namespace="t:shop")
    inner = make_store(namespace="t:shop:eu")
    other = make_store(namespace="t:bank")
    for n, store in enumerate((outer, inner, other)):
        await store.invalidate()
        await store.put(KEY, entry(n), ttl_s=60)
    assert [await s.get(KEY) for s in (outer, inner, other)] == [entry(0), entry(1), entry(2)]

    assert await outer.invalidate() == 1
    assert await outer.get(KEY) is None
    assert await inner.get(KEY) == entry(1)
    assert await other.get(KEY) == entry(2)


async def test_invalidate_by_endpoint_model_and_all(make_store: MakeStore) -> None:
    """Invalidation removes the entries matching endpoint and/or model, or the whole namespace."""
    store = make_store()
    bystander = make_store()
    kept = {
        b"a|1": entry(1, endpoint="a", model="m:1"),
        b"a|2": entry(2, endpoint="a", model="m:2"),
        b"b|1": entry(3, endpoint="b", model="m:1"),
        b"b|2": entry(4, endpoint="b", model="n:1"),
    }
    for key, cached in kept.items():
        await store.put(key, cached, ttl_s=60)
    await bystander.put(b"a|1", kept[b"a|1"], ttl_s=60)

    assert await store.invalidate(endpoint="a", model="n:1") == 0
    assert await store.invalidate(model="m:1") == 2
    assert await store.get(b"a|1") is None and await store.get(b"b|1") is None
    assert await store.invalidate(endpoint="b") == 1
    assert await store.get(b"b|2") is None
    assert await store.get(b"a|2") == kept[b"a|2"]

    # Enough keys for SCAN to take several round trips.
    for i in range(1500):
        await store.put(i.to_bytes(4, "big"), entry(i), ttl_s=60)
    assert await store.invalidate() == 1501
    assert await store.get(b"a|2") is None
    assert await bystander.get(b"a|1") == kept[b"a|1"]
    assert store.stats().errors == 0


async def test_garbled_value_is_a_miss(make_store: MakeStore, raw: redis.asyncio.Redis) -> None:
    """A value the store cannot decode reads as a miss and an error, and keeps the breaker shut."""
    store = make_store(breaker_failures=1)
    await store.put(KEY, entry(), ttl_s=60)
    [name] = await raw.keys(f"{store.namespace}:*")
    garbage = [b"\xffnot json", b'{"value": 1}', b'[1, 0.9, "m:1", "free", 0.0, "e", 0.0]']
    for n, value in enumerate(garbage, start=1):
        await raw.set(name, value)
        assert await store.get(KEY) is None
        assert store.stats().errors == n
    assert not store.breaker_open
    assert await store.invalidate(model="digits:1") == 0  # undecodable: matches no filter


async def test_outage_fails_open_and_recovers(
    make_store: MakeStore,
    redis_server_factory: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis down calls miss fast, the breaker stops calling it, and a restart heals."""
    caplog.set_level(logging.INFO, logger="frugal.cache.redis")
    server = redis_server_factory()
    now, clock = fake_clock()
    store = make_store(server.url, breaker_failures=3, breaker_reset_s=5.0, clock=clock)
    await store.put(KEY, entry(), ttl_s=60)
    assert await store.get(KEY) == entry()

    server.stop()
    for failures in (1, 2, 3):
        started = time.monotonic()
        assert await store.get(KEY) is None
        assert time.monotonic() - started < 0.5
        assert store.stats().errors == failures
    assert store.breaker_open

    # Open: nothing reaches the network, so nothing more fails.
    await store.put(KEY, entry(), ttl_s=60)
    assert await store.invalidate() == 0
    assert await store.get(KEY) is None
    assert store.stats().errors == 3

    # Half-open while still down: one probe fails and the breaker waits another period.
    now[0] += 5.0
    assert await store.get(KEY) is None
    assert await store.get(KEY) is None
    assert store.stats().errors == 4
    assert store.breaker_open

    server = redis_server_factory(port=server.port)
    assert await store.get(KEY) is None  # still open: the store has not tried yet
    now[0] += 5.0
    await store.put(KEY, entry(2), ttl_s=60)  # the probe: it succeeds and closes the breaker
    assert not store.breaker_open
    assert await store.get(KEY) == entry(2)
    assert store.stats().errors == 4

    messages = [r.getMessage() for r in caplog.records if r.name == "frugal.cache.redis"]
    assert len(messages) == 3, messages  # the first failure, breaker open, breaker closed
    assert "GET failed" in messages[0]
    assert "breaker open" in messages[1]
    assert "breaker closed" in messages[2]


async def test_paused_server_times_out(
    make_store: MakeStore, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """A server that stops answering costs a get its timeout, then the store carries on."""
    server = redis_server_factory()
    store = make_store(server.url, timeout_ms=50)
    await store.put(KEY, entry(), ttl_s=60)
    server.pause()
    try:
        started = time.monotonic()
        assert await store.get(KEY) is None
        elapsed = time.monotonic() - started
    finally:
        server.resume()
    assert 0.04 <= elapsed < 0.5
    assert store.stats().errors == 1
    assert await store.get(KEY) == entry()  # the timed-out connection was replaced
