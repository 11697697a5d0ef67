"""The load generator: a real server on a free port, the server's CPU read from /proc."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from frugal.errors import FrugalError, InvalidInput
from frugal.optimize import free_port, run_async, running_server
from frugal.optimize.loadgen import cpu_seconds, drive, process_tree
from tests.conftest import digits_config, write_config

BODY = b'{"instances": [[' + b",".join([b"0.5"] * 64) + b"]]}"


def test_drive_measures_a_real_server(serve: Any, digits_model_file: Path, tmp_path: Path) -> None:
    """Two connections against the digits endpoint: every answer counted, none failed."""
    server = serve(write_config(tmp_path, digits_config(digits_model_file, tmp_path)))
    url = f"{server.url}/v1/endpoints/digits/predict"
    result = asyncio.run(drive(url, [BODY], 2, 0.4, warmup_s=0.1, server_pid=os.getpid()))
    assert result.concurrency == 2 and result.errors == 0 and result.requests > 0
    assert result.req_per_s == pytest.approx(result.requests / result.seconds)
    assert 0 < result.p50_ms <= result.p99_ms
    # The server runs in this process here, so its CPU is this process's: positive, bounded.
    assert result.server_cpu_s is not None and result.server_cpu_s > 0
    assert result.server_cpu_s_per_request == pytest.approx(result.server_cpu_s / result.requests)


def test_drive_counts_refusals_without_hanging() -> None:
    """Nothing listens on the port: the window ends on time with errors and no answers."""
    url = f"http://127.0.0.1:{free_port()}/v1/endpoints/x/predict"
    started = time.monotonic()
    result = asyncio.run(drive(url, [BODY], 4, 0.3, warmup_s=0.0))
    assert result.requests == 0 and result.errors > 0
    assert time.monotonic() - started < 10
    assert result.server_cpu_s is None and result.server_cpu_s_per_request is None


@pytest.mark.parametrize(
    ("url", "concurrency", "seconds", "message"),
    [
        ("https://127.0.0.1:1/x", 1, 1.0, "plain http://host:port/path only"),
        ("http://127.0.0.1:1/x", 0, 1.0, "concurrency must be >= 1"),
        ("http://127.0.0.1:1/x", 1, 0.0, "seconds must be > 0"),
    ],
)
def test_drive_refuses_bad_arguments(
    url: str, concurrency: int, seconds: float, message: str
) -> None:
    """A TLS URL, no connections or no time are clear errors before any request."""
    with pytest.raises(InvalidInput, match=message):
        asyncio.run(drive(url, [BODY], concurrency, seconds))


def test_cpu_seconds_follow_the_process_tree() -> None:
    """A child is part of its parent's tree; CPU time only grows; a missing pid is an error."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        assert child.pid in process_tree(os.getpid())
        before = cpu_seconds(os.getpid())
        sum(i * i for i in range(2_000_000))
        assert cpu_seconds(os.getpid()) > before
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    with pytest.raises(InvalidInput, match="cannot read the CPU time of process"):
        cpu_seconds(2**22 + 12345)


def test_drive_sends_a_count_and_its_window_holds_exactly_those_requests(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """With ``requests=``, exactly that many are sent after a warm-up on other bodies; each
    answer is kept with its body's index, and the server's ledger rows inside the window are
    exactly the counted requests (the warm-up's fall before it)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    bodies = [b'{"instances": [[' + ",".join(f"{v:g}" for v in x[i]).encode() + b"]]}"
              for i in range(1500, 1510)]  # fmt: skip
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    seen: list[None] = []
    with running_server(config, log_path=tmp_path / "serve.log") as (base, pid):
        assert pid != os.getpid() and base.startswith("http://127.0.0.1:")
        result = run_async(
            drive(f"{base}/v1/endpoints/digits/predict", bodies, 3, requests=25, warmup_s=0.2,
                  warmup_bodies=[BODY], keep_answers=True, on_request=lambda: seen.append(None))
        )  # fmt: skip
    assert result.requests == 25 and result.errors == 0 and len(seen) == 25
    assert sorted(i for i, _ in result.answers) == sorted(k % 10 for k in range(25))
    predicted = {i: json.loads(body)["predictions"][0] for i, body in result.answers}
    assert sum(predicted[i] == y[1500 + i] for i in range(10)) >= 8  # a trained model answered
    assert result.since < result.until
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        inside, outside = db.execute(
            "SELECT SUM(ts >= ? AND ts <= ?), SUM(ts < ?) FROM requests",
            (result.since, result.until, result.since),
        ).fetchone()
    assert inside == 25 and outside > 0  # the warm-up answered before the window opened


def test_drive_needs_one_window_length() -> None:
    """Both a duration and a count, or neither, or a count below 1, is a clear error."""
    url = "http://127.0.0.1:1/x"
    with pytest.raises(InvalidInput, match="either seconds or requests"):
        asyncio.run(drive(url, [BODY], 1, 1.0, requests=5))
    with pytest.raises(InvalidInput, match="either seconds or requests"):
        asyncio.run(drive(url, [BODY], 1))
    with pytest.raises(InvalidInput, match="requests must be >= 1"):
        asyncio.run(drive(url, [BODY], 1, requests=0))


def test_running_server_quotes_the_log_of_a_server_that_will_not_start(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """A config the server refuses (a wrong sha256) is a FrugalError with the server's own words
    as soon as it exits, not a wait for the readiness timeout."""
    settings = digits_config(digits_model_file, tmp_path)
    settings["models"][0]["sha256"] = "0" * 64
    config = write_config(tmp_path, settings)
    with pytest.raises(FrugalError, match="exited with 2 before it was ready") as error:
        with running_server(config):
            pass
    assert "sha256" in str(error.value)
