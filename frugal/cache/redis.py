"""The Redis cache store: shared by every replica, and never the reason a request fails.

A cache is an optimisation, so the store fails open: a Redis that is down, slow or answering
garbage turns every operation into a miss (``get``) or a no-op (``put``, ``invalidate``), counted
in ``stats().errors``. Each round trip is bounded by ``timeout_ms``; after ``breaker_failures``
failures in a row a circuit breaker stops calling Redis for ``breaker_reset_s``, so an outage
costs requests nothing but the miss, then one call probes (half-open) and a success closes it.
redis-py's pool reconnects by itself, so recovery needs no restart.

Keys are ``namespace:`` plus the hex of the cache key; Redis applies the TTL (``SET ... PX``),
so Redis, not this store, expires and evicts entries. An entry is stored as a compact orjson
list of its fields, so a value comes back as its JSON: numpy arrays and scalars as lists and
numbers, tuples as lists, non-string dict keys as strings.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from frugal.cache.store import CacheEntry, CacheStats, decode_entry, encode_entry

logger = logging.getLogger("frugal.cache.redis")

T = TypeVar("T")

_SCAN_COUNT = 1000  # keys per SCAN round trip: few round trips, each still short for Redis
# A TTL beyond this (about 30,000 years) is stored without expiry: Redis refuses PX values
# that overflow its clock, and such an entry would outlive any deployment anyway.
_MAX_TTL_S = 1e12
_FAILURE_LOG_INTERVAL_S = 60.0  # at most one "failed" line per interval; breaker changes always


class _Unavailable(Exception):
    """Redis was not called (breaker open) or failed; already counted and logged."""


class RedisStore:
    """A CacheStore in Redis, for caches shared between replicas; fails open, never raises.

    ``stats()`` reports ``entries`` and ``bytes`` as 0: Redis holds them, and counting one
    namespace would take a SCAN of the whole keyspace. ``evictions`` and ``expirations`` are 0
    too, since Redis does both itself; ``errors`` counts the operations that failed or timed
    out (including values that could not be decoded), not those the open breaker skipped.
    ``clock`` times the breaker and is injectable so tests need no sleeps.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        timeout_ms: float = 50.0,
        breaker_failures: int = 5,
        breaker_reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout_ms > 0:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        if breaker_failures < 1:
            raise ValueError(f"breaker_failures must be at least 1, got {breaker_failures}")
        if not breaker_reset_s >= 0:
            raise ValueError(f"breaker_reset_s must be at least 0, got {breaker_reset_s}")
        self.namespace = namespace
        self.timeout_ms = timeout_ms
        self.breaker_failures = breaker_failures
        self.breaker_reset_s = breaker_reset_s
        self._clock = clock
        # No retries inside redis-py: the timeout bounds the whole call and the breaker decides
        # when to try again. The pool still replaces a dead connection on the next call.
        self._redis = Redis.from_url(url, retry=Retry(NoBackoff(), 0))
        self._where = _without_credentials(url)
        self._prefix = namespace.encode() + b":"
        self._match = _glob_escape(self._prefix) + b"*"
        self._errors = 0
        self._failures = 0  # in a row
        self._opened_at: float | None = None  # breaker open since, on the clock
        self._probing = False  # a half-open call is in flight
        self._failure_logged_at: float | None = None

    @property
    def breaker_open(self) -> bool:
        """True while calls skip Redis (including while the half-open probe is in flight)."""
        return self._opened_at is not None

    async def get(self, key: bytes) -> CacheEntry | None:
        try:
            raw = await self._call(partial(self._redis.get, self._name(key)), "GET")
        except _Unavailable:
            return None
        if raw is None:
            return None
        try:
            return decode_entry(raw)
        except (ValueError, TypeError) as exc:
            self._count_error("GET", f"undecodable value ({exc})")
            return None

    async def put(self, key: bytes, entry: CacheEntry, ttl_s: float) -> None:
        name = self._name(key)
        payload: bytes | None = None
        if ttl_s > 0:  # also refuses NaN
            try:
                payload = encode_entry(entry)
            except TypeError as exc:  # orjson.JSONEncodeError: a value JSON cannot hold
                self._count_error("SET", f"value not serializable ({exc})")
        try:
            if payload is None:
                # A put replaces: whatever the key held is stale now, even if nothing is stored.
                await self._call(partial(self._redis.delete, name), "DEL")
            else:
                px = math.ceil(ttl_s * 1000) if ttl_s < _MAX_TTL_S else None
                await self._call(partial(self._redis.set, name, payload, px=px), "SET")
        except _Unavailable:
            pass

    async def invalidate(self, *, endpoint: str | None = None, model: str | None = None) -> int:
        # SCAN walks the whole keyspace in batches, each batch one bounded round trip; rare (a
        # deploy, an operator's command). If Redis fails midway, what was removed is returned.
        everything = endpoint is None and model is None
        removed = 0
        cursor = 0
        try:
            while True:
                scan = partial(self._redis.scan, cursor, match=self._match, count=_SCAN_COUNT)
                cursor, names = await self._call(scan, "SCAN")
                names = [name for name in names if isinstance(name, bytes) and self._owns(name)]
                if names and not everything:
                    values = await self._call(partial(self._redis.mget, names), "MGET")
                    names = [
                        name
                        for name, raw in zip(names, values, strict=True)
                        if raw is not None and _matches(raw, endpoint, model)
                    ]
                if names:
                    removed += await self._call(partial(self._redis.delete, *names), "DEL")
                if cursor == 0:
                    return removed
        except _Unavailable:
            return removed

    def stats(self) -> CacheStats:
        return CacheStats(entries=0, bytes=0, evictions=0, expirations=0, errors=self._errors)

    async def close(self) -> None:
        """Close the connection pool; the store must not be used afterwards."""
        await self._redis.aclose()

    def _name(self, key: bytes) -> bytes:
        return self._prefix + key.hex().encode()

    def _owns(self, name: bytes) -> bool:
        # ``ns:*`` also matches keys of a namespace ``ns:sub``; ours end in hex, with no colon.
        return b":" not in name[len(self._prefix) :]

    async def _call(self, command: Callable[[], Awaitable[T]], what: str) -> T:
        """One round trip under the timeout and the breaker; raises _Unavailable on failure."""
        probe = self._admit()
        try:
            async with asyncio.timeout(self.timeout_ms / 1000):
                result = await command()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            self._fail(what, exc, probe)
            raise _Unavailable from exc
        finally:
            if probe:
                self._probing = False
        self._succeed()
        return result

    def _admit(self) -> bool:
        """Whether this call is the half-open probe; raises _Unavailable while it is open."""
        if self._opened_at is None:
            return False
        if self._probing or self._clock() - self._opened_at < self.breaker_reset_s:
            raise _Unavailable
        self._probing = True
        return True

    def _succeed(self) -> None:
        self._failures = 0
        if self._opened_at is not None:
            self._opened_at = None
            logger.info("redis cache %s at %s answers again; breaker closed", *self._names())

    def _fail(self, what: str, exc: BaseException, probe: bool) -> None:
        self._errors += 1
        self._failures += 1
        if probe:
            self._opened_at = self._clock()  # still down: wait another breaker_reset_s
        elif self._opened_at is None:
            self._log_failure(what, repr(exc))
            if self._failures >= self.breaker_failures:
                self._opened_at = self._clock()
                logger.warning(
                    "redis cache %s at %s: %d failures in a row; breaker open, not calling "
                    "Redis for %.1f s (the cache misses meanwhile)",
                    *self._names(),
                    self._failures,
                    self.breaker_reset_s,
                )

    def _count_error(self, what: str, reason: str) -> None:
        # Bad data, not a bad Redis: counted and logged, but the breaker stays as it is.
        self._errors += 1
        self._log_failure(what, reason)

    def _log_failure(self, what: str, reason: str) -> None:
        now = self._clock()
        logged = self._failure_logged_at
        if logged is not None and now - logged < _FAILURE_LOG_INTERVAL_S:
            return
        self._failure_logged_at = now
        logger.warning(
            "redis cache %s at %s: %s failed: %s; failing open (a miss). "
            "Hint: check that Redis runs at the cache's redis_url and answers within %g ms",
            *self._names(),
            what,
            reason,
            self.timeout_ms,
        )

    def _names(self) -> tuple[str, str]:
        return self.namespace, self._where


def _matches(raw: bytes | str, endpoint: str | None, model: str | None) -> bool:
    try:
        entry = decode_entry(raw)
    except (ValueError, TypeError):
        return False  # not ours to judge; a get reads it as a miss
    return (endpoint is None or entry.endpoint == endpoint) and (
        model is None or entry.model == model
    )


def _glob_escape(text: bytes) -> bytes:
    """``text`` as a literal in a Redis MATCH pattern."""
    for special in (b"\\", b"*", b"?", b"[", b"]"):
        text = text.replace(special, b"\\" + special)
    return text


def _without_credentials(url: str) -> str:
    """The URL for logs: a password must not reach them."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


__all__ = ["RedisStore"]
