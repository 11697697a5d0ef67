"""The soak's load: request bodies, the closed-loop capacity run, and the open-loop phases with
slow clients and a Redis restart beside them. Runs in one asyncio loop (uvloop when installed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from soak_client import Answer, HttpPool, RedisProcess, SlowOutcome, slow_clients

PREDICT_PATH = "/v1/endpoints/digits/predict"


class Bodies:
    """Request bodies of one digits row each: ``hot_share`` of them one of ``hot_rows`` rows
    (cache hits once seen), the rest unique (the first pixel carries a counter, so no two are the
    same item and the cache never answers them). One object serves the whole soak, so that the
    load never repeats a body of the capacity run."""

    def __init__(self, hot_share: float, hot_rows: int, seed: int) -> None:
        from sklearn.datasets import load_digits

        rows = load_digits().data.tolist()
        self.rng = random.Random(seed)
        self.hot_share = hot_share

        def rest(row: list[float]) -> bytes:
            return ("," + ",".join(f"{v:g}" for v in row[1:]) + "]]}").encode()

        self.hot = [
            b'{"instances":[[%s%s' % (f"{row[0]:g}".encode(), rest(row)) for row in rows[:hot_rows]
        ]
        self.tails = [rest(row) for row in rows]
        self.unique_sent = 0

    def unique(self) -> bytes:
        self.unique_sent += 1
        n = self.unique_sent
        return b'{"instances":[[0.%09d%s' % (n, self.tails[n % len(self.tails)])

    def next(self) -> bytes:
        if self.rng.random() < self.hot_share:
            return self.hot[self.rng.randrange(len(self.hot))]
        return self.unique()


async def send(pool: HttpPool, answer: Answer, body: bytes, timeout_s: float) -> None:
    """One request; ``answer`` gets its status or why it has none."""
    answer.started = time.monotonic()
    request = pool.encode(body, answer.request_id)
    try:
        async with asyncio.timeout(timeout_s):
            await pool.send(request, answer)
    except TimeoutError:
        answer.error = answer.error or "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        answer.error = answer.error or "closed"
    answer.done = time.monotonic()


async def run_capacity(
    pool: HttpPool,
    bodies: Bodies,
    connections: int,
    warmup_s: float,
    seconds: float,
    timeout_s: float,
    answers: list[Answer],
) -> float:
    """Closed loop of cache misses: ``connections`` requests in flight for ``warmup_s`` +
    ``seconds``; returns the 200s per second of the measured part (0 when ``seconds`` is 0)."""
    start = time.monotonic()
    measure_from = start + warmup_s
    end = measure_from + seconds

    async def worker(index: int) -> None:
        n = 0
        while time.monotonic() < end:
            n += 1
            answer = Answer(-1, time.monotonic(), f"warm-{index}-{n}")
            answers.append(answer)
            await send(pool, answer, bodies.unique(), timeout_s)

    await asyncio.gather(*(worker(i) for i in range(connections)))
    if seconds <= 0:
        return 0.0
    done = [a for a in answers if a.status == 200 and measure_from <= a.done <= end]
    return len(done) / seconds


@dataclass
class LoadPlan:
    """What the open-loop part does; times are monotonic seconds."""

    rates: list[float]  # requests/s, one per phase
    phase_s: float
    poisson: bool
    timeout_s: float
    seed: int
    slow_count: int
    slow_body_bytes: int
    slow_interval_s: float
    redis_restart_phase: int  # 1-based; 0: none
    redis_down_s: float
    on_phase: Callable[[int, list[Answer]], None] = lambda i, answers: None
    # filled in by run_load
    phase_starts: list[float] = field(default_factory=list)
    load_end: float = 0.0
    drained: float = 0.0
    redis_killed: float | None = None
    redis_back: float | None = None
    # (at, gap_s, the loop thread's CPU s, the process's CPU s) of each stall of the loop
    stalls: list[tuple[float, float, float, float]] = field(default_factory=list)


STALL_TICK_S = 0.005
STALL_S = 0.050


async def watch_stalls(plan: LoadPlan, stop: asyncio.Event) -> None:
    """Records each time the generator's loop woke more than ``STALL_S`` late, with the CPU its
    thread and its whole process used meanwhile: the loop's thread near the gap means the
    generator itself was busy (it is the bottleneck); its other threads near the gap, that they
    held the interpreter; neither, that it was not running (a busy machine)."""
    last, last_thread, last_process = time.monotonic(), time.thread_time(), time.process_time()
    while not stop.is_set():
        await asyncio.sleep(STALL_TICK_S)
        now, thread, process = time.monotonic(), time.thread_time(), time.process_time()
        if now - last > STALL_S:
            plan.stalls.append((now, now - last, thread - last_thread, process - last_process))
        last, last_thread, last_process = now, thread, process


async def run_load(
    pool: HttpPool,
    bodies: Bodies,
    redis: RedisProcess,
    plan: LoadPlan,
    host: str,
    port: int,
) -> tuple[list[list[Answer]], list[SlowOutcome]]:
    """The phases back to back, slow clients and the Redis restart beside them; returns each
    phase's answers and the slow requests, once every request has an answer or timed out."""
    rng = random.Random(plan.seed)
    stop_slow = asyncio.Event()
    slow = asyncio.create_task(
        slow_clients(
            plan.slow_count,
            host,
            port,
            PREDICT_PATH,
            plan.slow_body_bytes,
            plan.slow_interval_s,
            stop_slow,
        )
    )
    stop_watch = asyncio.Event()
    watch = asyncio.create_task(watch_stalls(plan, stop_watch))
    in_flight: set[asyncio.Task[None]] = set()
    phases: list[list[Answer]] = []
    restart: asyncio.Task[None] | None = None
    start = time.monotonic() + 0.05
    for index, rate in enumerate(plan.rates):
        phase_start = start + index * plan.phase_s
        phase_end = phase_start + plan.phase_s
        plan.phase_starts.append(phase_start)
        if index + 1 == plan.redis_restart_phase:
            at = phase_start + (plan.phase_s - plan.redis_down_s) / 2
            restart = asyncio.create_task(_restart_redis(redis, max(at, phase_start), plan))
        answers: list[Answer] = []
        phases.append(answers)
        at = phase_start
        while True:
            at += rng.expovariate(rate) if plan.poisson else 1 / rate
            if at >= phase_end:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            answer = Answer(index, at, f"load-{index}-{len(answers)}")
            answers.append(answer)
            task = asyncio.create_task(send(pool, answer, bodies.next(), plan.timeout_s))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        plan.on_phase(index, answers)
    plan.load_end = start + len(plan.rates) * plan.phase_s
    if in_flight:
        await asyncio.wait(in_flight)
    plan.drained = time.monotonic()
    stop_watch.set()
    await watch
    if restart is not None:
        await restart
    stop_slow.set()
    return phases, await slow


async def _restart_redis(redis: RedisProcess, at: float, plan: LoadPlan) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    plan.redis_killed = time.monotonic()
    await asyncio.to_thread(redis.kill)
    await asyncio.sleep(plan.redis_down_s)
    await asyncio.to_thread(redis.start)
    plan.redis_back = time.monotonic()


def loop_runner() -> Callable[[Any], Any]:
    """uvloop's run when installed (the generator's CPU a request is lower), else asyncio's."""
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run
