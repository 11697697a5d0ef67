"""Refusing work early, when the server itself (not a model) is the bottleneck.

Admission and the batchers' queues guard the models. They cannot see a server whose event loop
is drowning in HTTP parsing: then every request waits in the loop's backlog before frugal reads
it, deadlines pass unseen and health probes time out. The loop's own lag is the signal for that:
a timer that should fire every ``TICK_S`` fires late by as much as the loop is behind. While it
is over ``server.max_loop_lag_ms``, new inference requests are answered 503 with Retry-After
before their body is read: such a refusal costs a few microseconds against the whole request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection
from typing import Protocol

from frugal.config import ServerConfig
from frugal.errors import Overloaded

TICK_S = 0.01  # how often the lag is sampled; 100 wake-ups a second cost nothing measurable
RETRY_AFTER_S = 1.0


SMOOTHING = 0.25  # weight of the newest tick: a lone scheduling hiccup is not an overload


class LoopLag:
    """How far behind the event loop runs: ``smoothed_s`` for shedding, ``now_s`` for probes.

    ``smoothed_s`` is a moving average over the last few ticks, so one late tick (the process
    descheduled on a busy machine for 150 ms) does not refuse the requests that piled up
    meanwhile, while a loop that stays behind crosses the bound within a few ticks.
    ``now_s`` also counts a tick that is overdue right now: a loop stuck for 30 s reads 30 s.
    """

    def __init__(self) -> None:
        self.last_s = 0.0
        self.smoothed_s = 0.0
        self._due = time.monotonic() + TICK_S
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._due = time.monotonic() + TICK_S
        self._task = asyncio.create_task(self._tick(), name="frugal-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def now_s(self) -> float:
        if self._task is None or self._task.done():
            return 0.0  # not measuring (before start-up, after shutdown)
        overdue = time.monotonic() - self._due
        return overdue if overdue > self.last_s else self.last_s

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.last_s = max(0.0, now - self._due)
            self.smoothed_s += SMOOTHING * (self.last_s - self.smoothed_s)
            self._due = now + TICK_S


class OpenConnections(Protocol):
    connections: Collection[object]  # uvicorn's set (protocol.py's Limits holds it)


class Shedder:
    """Whether a new inference request is refused before anything is spent on it."""

    def __init__(
        self, config: ServerConfig, server: OpenConnections, lag: LoopLag | None = None
    ) -> None:
        self.server = server
        self.lag = lag or LoopLag()
        self.max_lag_s = config.max_loop_lag_ms / 1000 if config.max_loop_lag_ms else None
        self.max_open = config.max_concurrency
        self.max_connections = config.max_connections
        self.shedding = False  # for /metrics and the log: flips, not every refusal, are logged

    def refusal(self, open_requests: int) -> tuple[str, Overloaded] | None:
        """(reason, error) to answer with, or None to go on; O(1), no allocation when admitted.

        The reason is frugal_refused_total's label: max_concurrency, connections or loop_lag."""
        if self.max_open is not None and open_requests >= self.max_open:
            return "max_concurrency", Overloaded(
                f"{self.max_open} requests are already open (server.max_concurrency)",
                retry_after_s=RETRY_AFTER_S,
                hint="retry after Retry-After seconds, or raise server.max_concurrency",
            )
        if self.max_connections is not None and len(self.server.connections) > self.max_connections:
            return "connections", Overloaded(
                f"{len(self.server.connections)} connections are open (server.max_connections "
                f"{self.max_connections})", retry_after_s=RETRY_AFTER_S,
                hint="retry after Retry-After seconds on a new connection",
            )  # fmt: skip
        if self.max_lag_s is not None:
            lag_s = self.lag.smoothed_s
            # Hysteresis: once shedding, go on until the lag is under half the bound, so the
            # server does not flap between drowning and refusing on every tick.
            limit = self.max_lag_s / 2 if self.shedding else self.max_lag_s
            self.shedding = lag_s > limit
            if self.shedding:
                return "loop_lag", Overloaded(
                    f"the server is {lag_s * 1000:.0f} ms behind (server.max_loop_lag_ms "
                    f"{self.max_lag_s * 1000:g})", retry_after_s=RETRY_AFTER_S,
                    hint="retry after Retry-After seconds; add replicas if this persists",
                )  # fmt: skip
        return None


__all__ = ["LoopLag", "Shedder"]
