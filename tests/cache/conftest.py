"""Real redis-server processes on 127.0.0.1 for the Redis store's tests; skipped without one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from frugal.cache.store import CacheEntry
from frugal.optimize import free_port
from tests.waiting import eventually

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class RedisServer:
    """One redis-server subprocess: no persistence, loopback only, log in ``directory``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log = directory / f"redis-{port}.log"
        command = [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        import redis

        def answers(client: redis.Redis) -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}: {self._log_text()}"
                )
            return bool(client.ping())

        # The server gives no readiness signal but its port.
        with redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2) as client:
            try:
                eventually(lambda: answers(client), f"redis-server on port {self.port}",
                           timeout_s=START_TIMEOUT_S,
                           ignoring=(redis.ConnectionError,))  # fmt: skip
            except AssertionError as exc:
                raise RuntimeError(f"{exc}: {self._log_text()}") from None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open, nothing answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the server and wait for it to exit; a no-op if it has already."""
        if self.process.poll() is not None:
            return
        self.resume()  # a stopped process would hold SIGTERM pending forever
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no log)"


def _require_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    pytest.importorskip("redis", reason="the redis package is not installed (frugal[redis])")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server shared by the session; tests keep apart by namespace."""
    _require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    yield server.url
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``start(port=None)`` starts a redis-server of the test's own; all stop after the test."""
    _require_redis()
    servers: list[RedisServer] = []

    def start(port: int | None = None) -> RedisServer:
        server = RedisServer(tmp_path, port if port is not None else free_port())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def fake_clock(start: float = 0.0) -> tuple[list[float], Callable[[], float]]:
    """A clock the test moves by hand: set ``now[0]``."""
    now = [start]
    return now, lambda: now[0]


def cache_entry(value: Any = 1, *, model: str = "digits:1", endpoint: str = "digits") -> CacheEntry:
    """An entry as the cache stage writes one, with only what a test varies as arguments."""
    return CacheEntry(
        value=value,
        confidence=0.9,
        model=model,
        cost_usd=2e-6,
        created=1_700_000_000.0,
        endpoint=endpoint,
        compute_s=0.004,
    )
