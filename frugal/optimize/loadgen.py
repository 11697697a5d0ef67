"""A closed-loop HTTP load generator, and the CPU time of the server it drives.

``drive(url, bodies, concurrency, seconds)`` keeps ``concurrency`` requests in flight (each
connection sends its next request as soon as the last answer arrives), throws away a warm-up,
then measures a window: answers per second, client latency percentiles, and the CPU seconds the
server's process tree spent in that window (``/proc/<pid>/stat``, utime + stime of the server
and its children, never this process). ``frugal profile --http`` calls it once per concurrency;
``frugal demo`` can reuse it.

Why raw asyncio streams and not httpx: on a 2-core machine the load generator shares the cores
with the server it measures. httpx's AsyncClient spends about a millisecond of CPU per request,
more than a small model's whole server path, so the client would be what is measured. A minimal
HTTP/1.1 keep-alive client on asyncio streams costs tens of microseconds per request; the CPU it
does use is reported (``client_cpu_s``) so a saturated client shows.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from frugal.errors import InvalidInput

_STAT_CPU_FIELDS = slice(11, 15)  # utime, stime, cutime, cstime: fields 14..17 of proc(5) stat


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

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send ``request``; return (status, whether the answer was a cache hit)."""
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
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await reader.readexactly(length)
        if close:
            self.close()
        return status, hit

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


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


async def drive(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    seconds: float,
    *,
    warmup_s: float = 0.5,
    server_pid: int | None = None,
    timeout_s: float = 30.0,
) -> LoadResult:
    """POST ``bodies`` (JSON, cycled) to ``url`` from ``concurrency`` connections for
    ``warmup_s`` unmeasured then ``seconds`` measured; read ``server_pid``'s CPU over the window.
    """
    if concurrency < 1:
        raise InvalidInput(f"concurrency must be >= 1, got {concurrency}", field="concurrency")
    if seconds <= 0:
        raise InvalidInput(f"seconds must be > 0, got {seconds:g}", field="seconds")
    host, port, requests = _requests(url, bodies)
    latencies: list[float] = []
    counts = {"errors": 0, "hits": 0}
    window = {"open": False, "stop": False}

    async def worker(index: int) -> None:
        connection = _Connection(host, port)
        k = index * 7919  # connections start at different bodies
        try:
            while not window["stop"]:
                request = requests[k % len(requests)]
                k += 1
                started = time.perf_counter()
                try:
                    status, hit = await asyncio.wait_for(connection.exchange(request), timeout_s)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
                    connection.close()
                    status, hit = 0, False
                    await asyncio.sleep(0.01)  # a refused connection must not spin a core
                if not window["open"]:
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                    counts["hits"] += hit
                else:
                    counts["errors"] += 1
        finally:
            connection.close()

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup_s)
        server_before = cpu_seconds(server_pid) if server_pid is not None else None
        client_before = time.process_time()
        opened = time.perf_counter()
        window["open"] = True
        await asyncio.sleep(seconds)
        window["open"] = False
        elapsed = time.perf_counter() - opened
        client_cpu_s = time.process_time() - client_before
        server_cpu_s = (
            cpu_seconds(server_pid) - server_before
            if server_pid is not None and server_before is not None
            else None
        )
    finally:
        window["stop"] = True
        for task in tasks:
            task.cancel()  # an answer still in flight belongs to no window
        await asyncio.gather(*tasks, return_exceptions=True)
    ms = np.asarray(latencies) * 1000.0
    nan = float("nan")
    return LoadResult(
        concurrency=concurrency,
        seconds=elapsed,
        requests=len(latencies),
        errors=counts["errors"],
        req_per_s=len(latencies) / elapsed,
        p50_ms=float(np.percentile(ms, 50)) if len(ms) else nan,
        p99_ms=float(np.percentile(ms, 99)) if len(ms) else nan,
        mean_ms=float(ms.mean()) if len(ms) else nan,
        client_cpu_s=client_cpu_s,
        server_cpu_s=server_cpu_s,
        cache_hits=counts["hits"],
    )


__all__ = ["LoadResult", "cpu_seconds", "drive", "process_tree"]
