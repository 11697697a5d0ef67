"""Per-key request rate limits: a token bucket per key, in this process.

A key with ``rps`` r holds a bucket of r tokens (at least 1) that refills at r per second; a
request takes one token or is refused with the time until the next one frees. The capacity of
one second's worth lets a client burst up to its rate after a pause, no more. With N server
processes each gets r/N, so the machine as a whole allows r (as --workers prices each at 1/N).
Written by hand: the limit sits on the hot path of every request and needs no more than this.
"""

from __future__ import annotations

import time
from collections.abc import Callable


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
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per key name; a key's rate changing (rotation, edit) starts a new bucket."""

    def __init__(self, *, processes: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.processes = max(1, processes)
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, rps: float) -> float:
        rate = rps / self.processes
        bucket = self._buckets.get(key)
        now = self.clock()
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[key] = TokenBucket(rate, now)
        return bucket.take(now)


__all__ = ["RateLimiter", "TokenBucket"]
