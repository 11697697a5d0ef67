"""Waiting for state the test cannot await: poll a check until it holds, bounded by a deadline.

The server writes its ledger rows after a cost interval closes and the writer flushes, reloads
keys on a timer, judges canaries on later answers, and child processes (``frugal serve``,
``redis-server``) signal readiness only through their ports. None of that offers an event to a
test, and a fixed sleep is either too short on a loaded machine (a flaky test) or too long (a slow
one). ``eventually`` asks again every few milliseconds and fails with what it waited for, for how
long, and what the last check saw. ``eventually_async`` is the same loop for checks that must run
on the test's event loop (an engine driven in-process), where a blocking wait would stall it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_S = 10.0  # generous on a shared 2-core machine; a passing wait returns far sooner
INTERVAL_S = 0.01  # short next to the 20 ms cost and flush intervals of the test configs


class _Tries:
    """The deadline, the last value seen and the last ignored error, for the failure message."""

    def __init__(self, what: str, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.what = what
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.last: object = None
        self.error: BaseException | None = None

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def failure(self) -> AssertionError:
        seen = f"the last check raised {self.error!r}" if self.error else f"it gave {self.last!r}"
        return AssertionError(f"waited {self.timeout_s:g} s for {self.what}; {seen}")


def eventually(
    check: Callable[[], T],
    what: str,
    *,
    timeout_s: float = TIMEOUT_S,
    interval_s: float = INTERVAL_S,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Calls ``check`` until it returns something truthy and returns that; raises an
    AssertionError naming ``what`` once ``timeout_s`` has passed. Exceptions of the types in
    ``ignoring`` count as "not yet" (a port not open yet); any other propagates at once, so a
    check can give up early (a child process that exited)."""
    tries = _Tries(what, timeout_s)
    while True:
        try:
            value = check()
        except ignoring as exc:
            tries.error = exc
        else:
            if value:
                return value
            tries.last, tries.error = value, None
        if tries.expired():
            raise tries.failure()
        time.sleep(interval_s)  # the one sleep: between two checks, bounded by the deadline


async def eventually_async(
    check: Callable[[], Awaitable[T]],
    what: str,
    *,
    timeout_s: float = TIMEOUT_S,
    interval_s: float = INTERVAL_S,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """``eventually`` for a coroutine check, yielding to the event loop between checks."""
    tries = _Tries(what, timeout_s)
    while True:
        try:
            value = await check()
        except ignoring as exc:
            tries.error = exc
        else:
            if value:
                return value
            tries.last, tries.error = value, None
        if tries.expired():
            raise tries.failure()
        await asyncio.sleep(interval_s)  # between two checks; the loop runs the server meanwhile
