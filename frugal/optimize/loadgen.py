"""A closed-loop HTTP load generator, and the CPU time of the server it drives.

``drive(url, bodies, concurrency, seconds)`` keeps ``concurrency`` requests in flight (each
connection sends its next request as soon as the last answer arrives), throws away a warm-up,
then measures a window: answers per second, client latency percentiles, and the CPU seconds the
server's process tree spent in that window (``/proc/<pid>/stat``, utime + stime of the server
and its children, never this process). ``frugal profile --http`` calls it once per concurrency
for a fixed time; ``frugal demo`` calls it with ``requests=`` for a fixed count, keeps the
answers to score them, and reads the server's ledger over the window (``since``, ``until``).

Why raw asyncio streams and not httpx: on a 2-core machine the load generator shares the cores
with the server it measures. httpx's AsyncClient spends about a millisecond of CPU per request,
more than a small model's whole server path, so the client would be what is measured. A minimal
HTTP/1.1 keep-alive client on asyncio streams costs tens of microseconds per request; the CPU it
does use is reported (``client_cpu_s``) so a saturated client shows.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from frugal.errors import InvalidInput

_STAT_CPU_FIELDS = slice(11, 15)  # utime, stime, cutime, cstime: fields 14..17 of proc(5) stat
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One measured window at one concurrency."""

    concurrency: int
    seconds: float  # length of the measured window
    requests: int  # answered with status 200 inside the window
    errors: int  # other statuses, broken connections and timeouts inside the window
    req_per_s: float
    p50_ms: float  # client latency of the answered requests (nan when none was answered)
    p99_ms: float
    mean_ms: float
    client_cpu_s: float  # this process's CPU seconds in the window
    server_cpu_s: float | None = None  # the server's process tree (None: no pid given)
    cache_hits: int = 0  # answers marked ``x-frugal-cache: hit``
    since: float = 0.0  # the window's edges in unix seconds: a ledger report over exactly it
    until: float = 0.0
    answers: tuple[tuple[int, bytes], ...] = ()  # (body index, response body) if kept

    @property
    def server_cpu_s_per_request(self) -> float | None:
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s / self.requests

    @property
    def server_cores_busy(self) -> float | None:
        """Average cores the server kept busy: its CPU seconds over the window's wall time."""
        if self.server_cpu_s is None or self.seconds <= 0:
            return None
        return self.server_cpu_s / self.seconds


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``/proc/<pid>/task/*/children``), pid first."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue  # exited
        seen.append(current)
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as f:
                    todo.extend(int(child) for child in f.read().split())
            except OSError:
                pass
    return seen


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its descendants so far. A child that exits and is reaped moves
    its time into its parent's cutime/cstime, so the difference of two readings stays right."""
    if not os.path.exists(f"/proc/{pid}/stat"):
        raise InvalidInput(
            f"cannot read the CPU time of process {pid}: no /proc/{pid}/stat",
            hint="end-to-end profiles read the server's CPU from Linux's /proc",
        )
    ticks = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += sum(int(x) for x in fields[_STAT_CPU_FIELDS])
    return ticks / os.sysconf("SC_CLK_TCK")


class _Connection:
    """One keep-alive HTTP/1.1 connection: write a prepared request, read one response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bool, bytes]:
        """Send ``request``; return (status, whether the answer was a cache hit, its body)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        assert reader is not None
        writer.write(request)
        status = int((await reader.readline()).split(b" ", 2)[1])
        length, chunked, close, hit = 0, False, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
            elif name == b"x-frugal-cache":
                hit = value == b"hit"
        body = b""
        if chunked:
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                chunks.append((await reader.readexactly(size + 2))[:size])
                if size == 0:
                    break
            body = b"".join(chunks)
        elif length:
            body = await reader.readexactly(length)
        if close:
            self.close()
        return status, hit, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _send(
    connection: _Connection, request: bytes, timeout_s: float
) -> tuple[int, bool, bytes]:
    """One exchange; a broken connection or a timeout is status 0 (and a fresh connection next)."""
    try:
        return await asyncio.wait_for(connection.exchange(request), timeout_s)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
        connection.close()
        await asyncio.sleep(0.01)  # a refused connection must not spin a core
        return 0, False, b""


def _requests(url: str, bodies: Sequence[bytes]) -> tuple[str, int, list[bytes]]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInput(f"{url}: the load generator speaks plain http://host:port/path only")
    host, port = parts.hostname, parts.port or 80
    if not bodies:
        raise InvalidInput("no request bodies to send", field="bodies")
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
    )
    return host, port, [head.format(n=len(b)).encode() + b for b in bodies]


@dataclass(slots=True)
class _Tally:
    """What the measured window saw, request by request."""

    keep_answers: bool
    on_request: Callable[[], object] | None
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    hits: int = 0
    answers: list[tuple[int, bytes]] = field(default_factory=list)

    def add(self, index: int, status: int, hit: bool, body: bytes, latency_s: float) -> None:
        if status == 200:
            self.latencies.append(latency_s)
            self.hits += hit
            if self.keep_answers and index >= 0:
                self.answers.append((index, body))
        else:
            self.errors += 1
        if self.on_request is not None:
            self.on_request()


async def drive(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    seconds: float | None = None,
    *,
    requests: int | None = None,
    warmup_s: float = 0.5,
    warmup_bodies: Sequence[bytes] | None = None,
    server_pid: int | None = None,
    timeout_s: float = 30.0,
    keep_answers: bool = False,
    on_request: Callable[[], object] | None = None,
) -> LoadResult:
    """POST ``bodies`` (JSON) to ``url`` from ``concurrency`` connections: ``warmup_s`` unmeasured,
    then a measured window of ``seconds`` (bodies cycled, each connection from its own start), or
    of exactly ``requests`` requests (body ``k % len(bodies)`` for the k-th; the window opens
    when the warm-up's last answer is in and closes at the last one's, so no request straddles
    it). Reads ``server_pid``'s CPU over the window.

    ``warmup_bodies`` (default: ``bodies``) lets a caller warm the server without warming its
    cache with the measured traffic. ``keep_answers`` keeps each answered request's (body index,
    response body); ``on_request`` is called after each measured request (a progress bar).
    """
    if concurrency < 1:
        raise InvalidInput(f"concurrency must be >= 1, got {concurrency}", field="concurrency")
    if (seconds is None) == (requests is None):
        raise InvalidInput("give either seconds or requests (the window's length)", field="seconds")
    if seconds is not None and seconds <= 0:
        raise InvalidInput(f"seconds must be > 0, got {seconds:g}", field="seconds")
    if requests is not None and requests < 1:
        raise InvalidInput(f"requests must be >= 1, got {requests}", field="requests")
    host, port, prepared = _requests(url, bodies)
    warm = prepared if warmup_bodies is None else _requests(url, warmup_bodies)[2]
    tally = _Tally(keep_answers, on_request)
    connections = [_Connection(host, port) for _ in range(concurrency)]
    try:
        if requests is None:
            assert seconds is not None
            window = await _timed(connections, prepared, warm, seconds, warmup_s, timeout_s,
                                  tally, server_pid)  # fmt: skip
        else:
            await _warm_up(connections, warm, warmup_s, timeout_s)
            window = await _counted(connections, prepared, requests, timeout_s, tally, server_pid)
    finally:
        for connection in connections:
            connection.close()
    return _result(concurrency, window, tally)


@dataclass(frozen=True, slots=True)
class _Window:
    since: float  # unix seconds
    until: float
    seconds: float  # perf_counter difference: the window's length, monotonic
    client_cpu_s: float
    server_cpu_s: float | None


class _Clocks:
    """Wall, monotonic and CPU clocks read together at the window's edges."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.server = cpu_seconds(server_pid) if server_pid is not None else None
        self.client = time.process_time()
        self.since = time.time()
        self.opened = time.perf_counter()

    def close(self) -> _Window:
        seconds = time.perf_counter() - self.opened
        until = time.time()
        client_cpu_s = time.process_time() - self.client
        server_cpu_s = (
            cpu_seconds(self.server_pid) - self.server
            if self.server_pid is not None and self.server is not None
            else None
        )
        return _Window(self.since, until, seconds, client_cpu_s, server_cpu_s)


async def _timed(
    connections: list[_Connection],
    prepared: list[bytes],
    warm: list[bytes],
    seconds: float,
    warmup_s: float,
    timeout_s: float,
    tally: _Tally,
    server_pid: int | None,
) -> _Window:
    """Connections run without pause; the window opens after ``warmup_s`` for ``seconds``. A
    request is counted when its answer arrives inside the window."""
    state = {"open": False, "stop": False}

    async def worker(index: int, connection: _Connection) -> None:
        k = index * 7919  # connections start at different bodies
        while not state["stop"]:
            counted = state["open"]
            requests = prepared if counted else warm
            i = k % len(requests)
            k += 1
            started = time.perf_counter()
            status, hit, body = await _send(connection, requests[i], timeout_s)
            if state["open"]:  # sent in the warm-up, answered in the window: counted, as sent
                index = i if requests is prepared else -1
                tally.add(index, status, hit, body, time.perf_counter() - started)

    tasks = [asyncio.create_task(worker(i, c)) for i, c in enumerate(connections)]
    try:
        await asyncio.sleep(warmup_s)
        clocks = _Clocks(server_pid)
        state["open"] = True
        await asyncio.sleep(seconds)
        state["open"] = False
        return clocks.close()
    finally:
        state["stop"] = True
        for task in tasks:
            task.cancel()  # an answer still in flight belongs to no window
        await asyncio.gather(*tasks, return_exceptions=True)


async def _warm_up(
    connections: list[_Connection], warm: list[bytes], warmup_s: float, timeout_s: float
) -> None:
    """Send ``warm`` bodies for ``warmup_s`` and wait for every answer (none is counted)."""
    if warmup_s <= 0:
        return
    stop = time.monotonic() + warmup_s

    async def worker(index: int, connection: _Connection) -> None:
        k = index * 7919
        while time.monotonic() < stop:
            await _send(connection, warm[k % len(warm)], timeout_s)
            k += 1

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))


async def _counted(
    connections: list[_Connection],
    prepared: list[bytes],
    requests: int,
    timeout_s: float,
    tally: _Tally,
    server_pid: int | None,
) -> _Window:
    """Exactly ``requests`` requests, the k-th sending body ``k % len(prepared)``."""
    numbers = itertools.count()

    async def worker(connection: _Connection) -> None:
        while (k := next(numbers)) < requests:
            i = k % len(prepared)
            started = time.perf_counter()
            status, hit, body = await _send(connection, prepared[i], timeout_s)
            tally.add(i, status, hit, body, time.perf_counter() - started)

    clocks = _Clocks(server_pid)
    await asyncio.gather(*(worker(c) for c in connections))
    return clocks.close()


def _result(concurrency: int, window: _Window, tally: _Tally) -> LoadResult:
    ms = np.asarray(tally.latencies) * 1000.0
    nan = float("nan")
    return LoadResult(
        concurrency=concurrency,
        seconds=window.seconds,
        requests=len(tally.latencies),
        errors=tally.errors,
        req_per_s=len(tally.latencies) / window.seconds,
        p50_ms=float(np.percentile(ms, 50)) if len(ms) else nan,
        p99_ms=float(np.percentile(ms, 99)) if len(ms) else nan,
        mean_ms=float(ms.mean()) if len(ms) else nan,
        client_cpu_s=window.client_cpu_s,
        server_cpu_s=window.server_cpu_s,
        cache_hits=tally.hits,
        since=window.since,
        until=window.until,
        answers=tuple(tally.answers),
    )


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the load generator on uvloop when it is installed (as uvicorn's server does): it
    halves the client's CPU per request, which on a small machine is CPU the server lacks."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


__all__ = ["LoadResult", "cpu_seconds", "drive", "process_tree", "run_async"]
