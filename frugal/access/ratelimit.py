"""Per-key request rate limits: a token bucket per key, in this process.

A key with ``rps`` r holds a bucket of r tokens (at least 1) that refills at r per second; a
request takes one token or is refused with the time until the next one frees. The capacity of
one second's worth lets a client burst up to its rate after a pause, no more. With N server
processes each gets r/N, so the machine as a whole allows r (as --workers prices each at 1/N).
Written by hand: the limit sits on the hot path of every request and needs no more than this.

Whatever rate a key holds (keys are checked at creation, but a database is a file anyone with
access can edit, or one written by an older frugal), a wait is a finite number of seconds of at
most MAX_WAIT_S: a rate of 1e-320 would otherwise make it 1e320 s, or infinite, and a rate that
is not positive (or NaN) refuses every call for MAX_WAIT_S.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

MAX_WAIT_S = 86_400.0  # a day: the longest Retry-After frugal sends


class TokenBucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one will be there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        missing = 1.0 - self.tokens
        if missing >= self.rate * MAX_WAIT_S:  # a product, not a quotient: never overflows
            return MAX_WAIT_S
        return missing / self.rate


class RateLimiter:
    """One bucket per key name; a key's rate changing (rotation, edit) starts a new bucket."""

    def __init__(self, *, processes: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.processes = max(1, processes)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, rps: float) -> float:
        """0.0 when ``key`` may call now, else the seconds to wait (at most MAX_WAIT_S)."""
        if not rps > 0:  # zero, negative or NaN: no call is allowed
            return MAX_WAIT_S
        if math.isinf(rps):
            return 0.0
        rate = rps / self.processes
        bucket = self._buckets.get(key)
        now = self.clock()
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        return bucket.take(now)


__all__ = ["MAX_WAIT_S", "RateLimiter", "TokenBucket"]
