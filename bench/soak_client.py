"""The soak's clients: an open-loop HTTP/1.1 pool, slow clients, and a redis-server to restart.

Why raw asyncio streams and not httpx: at 10x a small model's capacity the generator sends
about a thousand requests a second on the 2-core machine that also runs the server. httpx's
AsyncClient spends about a millisecond of CPU a request (frugal/optimize/loadgen.py measured it),
so the generator, not the server, would be what saturates; aiohttp is not installed and is not
worth a dependency for this. A minimal keep-alive client costs tens of microseconds a request and
reads what the report needs: the status, ``Retry-After`` and ``x-frugal-cache``. bench/soak.py
measures and reports how late requests left against their schedule, so a saturated generator
shows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(slots=True)
class Answer:
    """One request of the open-loop load, as the client saw it (monotonic seconds)."""

    phase: int  # index of the load phase; -1: warm-up and capacity run
    scheduled: float  # when the schedule says it is sent: latencies count from here
    request_id: str  # sent as x-request-id, which the server's ledger row keeps
    started: float = 0.0  # when its task ran (scheduled + the generator's own lag)
    slot: float = 0.0  # when it had a connection slot (--max-connections reached: later)
    sent: float = 0.0  # when its bytes were written (slot + a new connection's connect time)
    done: float = 0.0
    status: int = 0  # 0: no answer (see error)
    error: str = ""  # "" | connect | closed | timeout
    retry_after: bool = False
    cache_hit: bool = False


class HttpPool:
    """Keep-alive connections to one server, at most ``max_connections`` open at once; a request
    with none idle opens a new one (so an open-loop burst opens as many as it needs)."""

    def __init__(self, host: str, port: int, path: str, max_connections: int) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nX-Request-Id: "
        ).encode()
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.open = 0
        self.peak_open = 0
        self.opened = 0
        self.stale_retries = 0  # keep-alive connections the server had closed while idle

    def encode(self, body: bytes, request_id: str) -> bytes:
        """The request's bytes, with ``request_id`` as its x-request-id."""
        return b"%s%s\r\nContent-Length: %d\r\n\r\n%s" % (
            self.head,
            request_id.encode(),
            len(body),
            body,
        )

    async def _connect(self) -> Connection:
        conn = await asyncio.open_connection(self.host, self.port)
        self.open += 1
        self.opened += 1
        self.peak_open = max(self.peak_open, self.open)
        return conn

    def _close(self, conn: Connection) -> None:
        conn[1].close()
        self.open -= 1

    async def send(self, request: bytes, answer: Answer) -> None:
        """Sends ``request`` and fills ``answer``; raises on a broken connection (the caller
        classifies it). Cancelled (a timeout), the connection is closed, never reused."""
        async with self.slots:
            answer.slot = time.monotonic()
            fresh = not self.idle
            conn = self.idle.pop() if self.idle else await self._connect_for(answer)
            answer.sent = time.monotonic()
            head = await self._exchange(conn, request)
            if head is None and not fresh:  # the server closed it while idle: reconnect once
                self.stale_retries += 1
                conn = await self._connect_for(answer)
                answer.sent = time.monotonic()
                head = await self._exchange(conn, request)
            if head is None:
                raise ConnectionResetError("the server closed the connection without an answer")
            answer.status, answer.retry_after, answer.cache_hit, close = head
            if close:
                self._close(conn)
            else:
                self.idle.append(conn)

    async def _connect_for(self, answer: Answer) -> Connection:
        try:
            return await self._connect()
        except OSError:
            answer.error = "connect"
            raise

    async def _exchange(
        self, conn: Connection, request: bytes
    ) -> tuple[int, bool, bool, bool] | None:
        """One exchange on ``conn``; the connection is closed unless it carried an answer."""
        try:
            head = await _round_trip(conn, request)
        except BaseException:
            self._close(conn)
            raise
        if head is None:
            self._close(conn)
        return head

    def close(self) -> None:
        while self.idle:
            self._close(self.idle.pop())


async def _round_trip(conn: Connection, request: bytes) -> tuple[int, bool, bool, bool] | None:
    """Writes a request, reads its response: (status, has Retry-After, cache hit, server closes),
    or None when the connection was closed before the status line."""
    reader, writer = conn
    writer.write(request)
    line = await reader.readline()
    if not line:
        return None
    status = int(line.split(b" ", 2)[1])
    length, chunked, close, retry_after, hit = 0, False, False, False, False
    while True:
        line = await reader.readline()
        if line == b"\r\n":
            break
        if not line:
            raise ConnectionResetError("the connection closed inside the response's headers")
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
        elif name == b"retry-after":
            retry_after = True
        elif name == b"x-frugal-cache":
            hit = value.strip().lower() == b"hit"
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, retry_after, hit, close


# --------------------------------------------------------------------------- slow clients


@dataclass(slots=True)
class SlowOutcome:
    """One slow request: what the server did with it."""

    request_id: str
    opened: float
    ended: float
    status: int  # the answer's status; 0 without one
    outcome: str  # answered | closed (by the server, no answer) | connect | open (at the end)


async def slow_request(
    request_id: str,
    host: str,
    port: int,
    path: str,
    body_bytes: int,
    byte_interval_s: float,
    stop: asyncio.Event,
) -> SlowOutcome:
    """A POST whose body of ``body_bytes`` arrives one byte every ``byte_interval_s``, until
    the server answers or closes, or ``stop`` is set."""
    opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return SlowOutcome(request_id, opened, time.monotonic(), 0, "connect")
    body = b'{"instances": [[' + b",".join([b"0"] * 64) + b"]]}"
    body = body.ljust(body_bytes, b" ")[:body_bytes]
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-Request-Id: {request_id}\r\nContent-Length: {body_bytes}\r\n\r\n".encode()
    )
    first_line = asyncio.ensure_future(reader.readline())
    stopped = asyncio.ensure_future(stop.wait())
    sent = 0
    try:
        while True:
            if sent < body_bytes and not writer.is_closing():
                writer.write(body[sent : sent + 1])
                sent += 1
            done, _ = await asyncio.wait(
                {first_line, stopped}, timeout=byte_interval_s, return_when=asyncio.FIRST_COMPLETED
            )
            if first_line in done:
                line = first_line.result()
                if not line:
                    return SlowOutcome(request_id, opened, time.monotonic(), 0, "closed")
                status = int(line.split(b" ", 2)[1])
                return SlowOutcome(request_id, opened, time.monotonic(), status, "answered")
            if stopped in done:
                return SlowOutcome(request_id, opened, time.monotonic(), 0, "open")
    except (OSError, ValueError, IndexError):
        return SlowOutcome(request_id, opened, time.monotonic(), 0, "closed")
    finally:
        first_line.cancel()
        stopped.cancel()
        writer.close()


async def slow_clients(
    count: int,
    host: str,
    port: int,
    path: str,
    body_bytes: int,
    byte_interval_s: float,
    stop: asyncio.Event,
) -> list[SlowOutcome]:
    """Keeps ``count`` slow requests open until ``stop``: one the server ends is replaced by a
    new one after ``byte_interval_s`` (a client that tries again)."""
    outcomes: list[SlowOutcome] = []

    async def slot(index: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            outcome = await slow_request(
                f"slow-{index}-{n}", host, port, path, body_bytes, byte_interval_s, stop
            )
            outcomes.append(outcome)
            if outcome.outcome != "open":
                try:
                    await asyncio.wait_for(stop.wait(), byte_interval_s)
                except TimeoutError:
                    pass

    await asyncio.gather(*(slot(i) for i in range(count)))
    return outcomes


# --------------------------------------------------------------------------- redis-server


class RedisProcess:
    """A redis-server on 127.0.0.1:``port`` (no persistence) that can be killed and started
    again on the same port."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary, self.port, self.directory = binary, port, directory
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = directory / f"redis-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout_s: float = 10.0) -> None:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:  # started by a reniced generator (bench/soak.py --nice): back to the usual 0
            os.setpriority(os.PRIO_PROCESS, self.process.pid, 0)
        except OSError:
            pass
        deadline = time.monotonic() + ready_timeout_s
        # redis-server offers no readiness signal but its port: poll PING.
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: "
                                   + self._log_tail())  # fmt: skip
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not answering after {ready_timeout_s:g} s: "
                                   + self._log_tail())  # fmt: skip
            time.sleep(0.02)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL, as a crashed or OOM-killed Redis dies: no goodbye to its clients."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
