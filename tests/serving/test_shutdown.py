"""SIGTERM on a real `frugal serve` process: every queued request is answered and recorded."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from frugal.optimize import free_port
from frugal.runtimes import sha256_of
from tests.conftest import TEST_INSTANCE, ServerProcess
from tests.waiting import eventually

SLOW_MODEL = '''
import time

import joblib
import numpy as np


class SlowDigits:
    """The digits model, made as slow as a heavier one: 20 ms a batch."""

    def __init__(self, model_path, delay_s):
        self.model = joblib.load(model_path)
        self.delay_s = delay_s

    def predict_batch(self, items):
        time.sleep(self.delay_s)  # slow on purpose: requests queue up behind it
        return self.model.predict(np.stack(items)).tolist()


def make(model_path, delay_s=0.02):
    return SlowDigits(model_path, delay_s)
'''


def queue_depth(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("frugal_queue_depth{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sigterm_answers_every_queued_request(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """With 250 requests queued, SIGTERM answers all of them, writes 250 ledger rows, exits 0."""
    (tmp_path / "slow_digits.py").write_text(SLOW_MODEL)
    config = {
        "instance": TEST_INSTANCE,
        "models": [
            {
                "name": "slow",
                "runtime": "python",
                "factory": "slow_digits:make",
                "path": str(tmp_path),
                "options": {"model_path": str(digits_model_file)},
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
                "batching": {"max_batch_size": 4, "max_queue": 1000, "timeout_ms": 60000},
            }
        ],
        "endpoints": [{"name": "slow", "model": "slow"}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }
    (tmp_path / "frugal.yaml").write_text(yaml.safe_dump(config))
    with ServerProcess(tmp_path / "frugal.yaml", "--log-level", "warning") as server:
        assert server.process is not None
        x, y = digits
        n = 250

        async def send_all() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=n)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
                tasks = [
                    asyncio.create_task(
                        client.post(
                            "/v1/endpoints/slow/predict", json={"instances": [x[i].tolist()]}
                        )
                    )
                    for i in range(n)
                ]
                # A child process offers nothing to await: watch its queue gauge, off the loop.
                await asyncio.to_thread(eventually, lambda: queue_depth(server.url) >= 200,
                                        "200 requests queued", timeout_s=30)  # fmt: skip
                assert server.process is not None
                server.process.send_signal(signal.SIGTERM)
                return list(await asyncio.gather(*tasks))

        responses = asyncio.run(send_all())
        assert server.process.wait(timeout=60) == 0
    assert [r.status_code for r in responses] == [200] * n
    assert [r.json()["predictions"][0] for r in responses] == [int(v) for v in y[:n]]
    db = sqlite3.connect(tmp_path / "ledger.db")
    rows = db.execute("SELECT COUNT(*), SUM(status = 200) FROM requests").fetchone()
    stopped = db.execute("SELECT stopped FROM runs").fetchone()[0]
    assert rows == (n, n)
    assert stopped is not None


def test_sha256_mismatch_refuses_to_start(tmp_path: Path, digits_model_file: Path) -> None:
    """A model file that does not match its sha256 stops `frugal serve` with a message naming it."""
    config = {
        "instance": TEST_INSTANCE,
        "models": [
            {
                "name": "digits",
                "runtime": "sklearn",
                "path": str(digits_model_file),
                "sha256": "0" * 64,
            }
        ],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }
    (tmp_path / "frugal.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "frugal",
            "serve",
            str(tmp_path / "frugal.yaml"),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "sha256 mismatch" in done.stderr and str(digits_model_file) in done.stderr
    assert sha256_of(digits_model_file) in done.stderr
    assert "Traceback" not in done.stderr
