"""An open-loop HTTP load generator: request i is sent at its scheduled time, whatever happened
before, on whichever pooled keep-alive connection is free (a new one when none is).

A closed loop (``loadgen.drive``) sends the next request when the last answer arrives, so the
server never sees two requests arrive together, never wakes from idle, and never queues more
than ``concurrency`` of them: it measures a server that real traffic never produces. Poisson
arrivals do all of that, so ``frugal profile --http --rates`` measures the server this way, and
``frugal simulate`` reads those levels for the time an answer spends outside the model's batch
(``frugal/scale/simulate_calibrate.py``). ``bench/simulate_validation.py`` replays traces with
the same ``replay``, so the profile and the validation measure the same thing the same way.

Latency is counted from the scheduled time (no coordinated omission: a late send is the
client's delay, and shows as ``send_lag``), and also from when the request was really written,
so the load generator's own delay on a shared machine can be told apart from the server's.
A pooled connection that the server closed while idle (uvicorn's keep-alive timeout) reads as
an empty status line: the request is sent again once on a new connection, as an HTTP client
library would, and its latency still counts from its first send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frugal.errors import InvalidInput
from frugal.optimize.loadgen import _Connection, _requests, cpu_seconds

_STALE = (IndexError, ConnectionError, asyncio.IncompleteReadError, BrokenPipeError)


def poisson_arrivals(rate_per_s: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Arrival offsets (s) of a Poisson process at ``rate_per_s`` over ``seconds``."""
    if not rate_per_s > 0:
        raise InvalidInput(f"rate must be > 0, got {rate_per_s:g}", field="rates")
    if not seconds > 0:
        raise InvalidInput(f"seconds must be > 0, got {seconds:g}", field="seconds")
    rng = np.random.default_rng(seed)
    count = int(rate_per_s * seconds * 1.2 + 20)
    t = np.cumsum(rng.exponential(1.0 / rate_per_s, count))
    while t[-1] < seconds:  # rare: more arrivals than 1.2x the mean
        t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1.0 / rate_per_s, count))])
    return np.asarray(t[t < seconds])


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """Request by request (offsets in seconds from the replay's start; nan where none)."""

    scheduled_s: np.ndarray
    sent_s: np.ndarray  # when its bytes were written
    done_s: np.ndarray  # when a 200 answer was read (nan: error)
    statuses: np.ndarray  # HTTP status, 0 for a broken connection or a timeout
    seconds: float  # from the start to the last answer
    client_cpu_s: float  # this process's CPU over the replay
    server_cpu_s: float | None  # the server's process tree over the replay (None: no pid)
    since: float  # unix seconds: the replay's edges, to read a ledger over exactly it
    until: float
    connections: int  # connections opened (a pool grows to the concurrency arrivals need)

    @property
    def answered(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.done_s))

    def latency_ms(self) -> np.ndarray:
        """Answered requests, from their scheduled time."""
        ok = self.answered
        return np.asarray((self.done_s[ok] - self.scheduled_s[ok]) * 1000)

    def from_send_ms(self) -> np.ndarray:
        """Answered requests, from when they were written (the load generator's delay left out)."""
        ok = self.answered
        return np.asarray((self.done_s[ok] - self.sent_s[ok]) * 1000)

    def send_lag_ms(self) -> np.ndarray:
        sent = ~np.isnan(self.sent_s)
        return np.asarray((self.sent_s[sent] - self.scheduled_s[sent]) * 1000)

    @property
    def errors(self) -> int:
        return int((~self.answered).sum())


async def replay(
    url: str,
    bodies: Sequence[bytes],
    t_s: np.ndarray,
    *,
    server_pid: int | None = None,
    timeout_s: float = 30.0,
) -> Replay:
    """POST ``bodies`` (JSON, cycled) to ``url``, request i at ``t_s[i]`` s after the start."""
    host, port, prepared = _requests(url, bodies)
    n = int(t_s.size)
    sent = np.full(n, np.nan)
    done = np.full(n, np.nan)
    statuses = np.zeros(n, dtype=np.int64)
    idle: list[_Connection] = []  # LIFO: the most recently used stays warm
    opened = [0]

    async def one(i: int, start: float) -> None:
        sent[i] = time.perf_counter() - start
        request = prepared[i % len(prepared)]
        for attempt in range(2):
            reused = bool(idle)
            connection = idle.pop() if reused else _Connection(host, port)
            opened[0] += not reused
            try:
                status, _, _ = await asyncio.wait_for(connection.exchange(request), timeout_s)
            except _STALE:
                connection.close()
                if reused and attempt == 0:
                    continue  # a keep-alive connection the server had closed: send it again
                return
            except (TimeoutError, OSError, ValueError):
                connection.close()
                return
            statuses[i] = status
            if status == 200:
                done[i] = time.perf_counter() - start
            if connection.writer is not None:
                idle.append(connection)
            return

    server0 = cpu_seconds(server_pid) if server_pid is not None else None
    client0, since = time.process_time(), time.time()
    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    try:
        for i in range(n):
            due = start + float(t_s[i])
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # The loop's timers may fire up to a millisecond early (uvloop counts in ms; seen: a
            # p50 from send above the p50 from schedule): wait out the rest, never send early.
            while time.perf_counter() < due:
                pass
            tasks.append(asyncio.create_task(one(i, start)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for connection in idle:
            connection.close()
    seconds = time.perf_counter() - start
    server_cpu = (
        cpu_seconds(server_pid) - server0
        if server_pid is not None and server0 is not None
        else None
    )
    return Replay(
        scheduled_s=np.asarray(t_s, dtype=np.float64),
        sent_s=sent,
        done_s=done,
        statuses=statuses,
        seconds=seconds,
        client_cpu_s=time.process_time() - client0,
        server_cpu_s=server_cpu,
        since=since,
        until=time.time(),
        connections=opened[0],
    )


__all__ = ["Replay", "poisson_arrivals", "replay"]
