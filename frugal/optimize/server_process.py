"""A real ``frugal serve`` in its own process, on a free loopback port, for as long as a block runs.

``frugal profile --http`` and ``frugal demo`` both measure a server from outside: its own process,
so that its CPU time can be read apart from the load generator's, and so that what is measured
is what production runs (the CLI, uvicorn, the ledger's writer thread, shutdown's flush). This is
the one place that starts such a server, waits until it is ready and stops it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frugal.errors import FrugalError


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it; another process could take it
    before the server binds, which on a test machine does not happen in practice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    config_path: Path,
    *,
    workers: int = 1,
    ready_timeout_s: float = 120.0,
    log_path: Path | None = None,
) -> Iterator[tuple[str, int]]:
    """``python -m frugal serve`` on a free loopback port until the block ends: (base URL, pid).

    Its output goes to ``log_path`` (default: ``serve.log`` next to the config). Readiness is
    polled (``/v2/health/ready``): the server is another process and offers no event to wait on.
    A server that exits or never gets ready is an error quoting its log. When the block ends the
    server gets SIGTERM, so it drains and flushes its ledger before this returns.
    """
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = config_path.parent / "serve.log" if log_path is None else log_path
    command = [sys.executable, "-m", "frugal", "serve", str(config_path), "--host",
               "127.0.0.1", "--port", str(port), "--workers", str(workers),
               "--log-level", "warning"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise FrugalError(
                        f"frugal serve exited with {process.returncode} before it was ready "
                        f"({log_path}):\n" + _tail(log_path)
                    )
                try:
                    if client.get(f"{url}/v2/health/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise FrugalError(
                        f"frugal serve was not ready after {ready_timeout_s:g} s "
                        f"({log_path}):\n" + _tail(log_path)
                    )
                time.sleep(0.1)
        yield url, process.pid
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server drains and exits 0), then SIGKILL its process group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            pass
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: its own group, ours alone
        process.wait()


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


__all__ = ["free_port", "running_server"]
