"""``frugal serve --ray --address local`` as a user runs it: a real process that starts its
own Ray, answers with frugal's headers, and on SIGTERM drains, stamps every replica's run
stopped in the ledger and exits 0."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.optimize import free_port
from tests.conftest import TEST_INSTANCE, digits_config, write_config
from tests.scale.ray_support import require_ray
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(600)
START_S = 240.0  # Ray, Serve and the replicas, on a shared 2-core VM: ~20 s


def test_serve_ray_answers_and_stops_cleanly(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    require_ray()
    data = digits_config(digits_model_file, tmp_path)
    data["instance"] = {**TEST_INSTANCE, "vcpus": 2}
    data["models"][0]["autoscaling"] = {"min_replicas": 1, "max_replicas": 1}
    config = write_config(tmp_path, data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "frugal", "serve", str(config), "--ray", "--address",
               "local", "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:

        def announced() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode}: {log.read_text()}")
            return "frugal on Ray Serve" in log.read_text(errors="replace")

        eventually(announced, "frugal serve --ray to be up", timeout_s=START_S, interval_s=0.2)
        x, _ = digits
        r = httpx.post(f"{url}/v1/endpoints/digits/predict",
                       json={"instances": x[:2].tolist()}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["x-frugal-model"] == "digits:1"
        assert float(r.headers["x-frugal-cost-usd"]) > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        runs = db.execute("SELECT price_usd_per_hour, stopped FROM runs").fetchall()
        requests = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    assert requests == 1
    price = TEST_INSTANCE["price_usd_per_hour"]
    assert sorted(p for p, _ in runs) == pytest.approx([price / 4, price / 2])
    assert all(stopped is not None for _, stopped in runs)
