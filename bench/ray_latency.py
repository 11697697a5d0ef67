"""What the Ray Serve path costs per request: one `frugal serve` process against `frugal
serve --ray --address local` (one ingress replica, one model replica), same digits model.

    python bench/ray_latency.py --requests 300

Each server runs as a real `frugal serve` process with its own ledger; one client sends
``--requests`` single-row requests one after another (after 20 to warm up). Prints p50/p99 of
the client's latency and, from each ledger, the mean cost per request (model + overhead) and
the runs' billed price per hour. Through Ray a request crosses two more processes (Serve's
proxy, the ingress replica, the model replica): this measures what that adds.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from frugal.optimize import free_port
from frugal.runtimes import sha256_of

INSTANCE = {"price_usd_per_hour": 0.36, "slots": 2, "vcpus": 2}


def write_config(folder: Path, model: Path) -> Path:
    data: dict[str, Any] = {
        "instance": INSTANCE,
        "models": [{
            "name": "digits", "version": "1", "runtime": "sklearn", "path": str(model),
            "sha256": sha256_of(model),
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
            "autoscaling": {"min_replicas": 1, "max_replicas": 1},
        }],
        "endpoints": [{"name": "digits", "model": "digits"}],
        "ledger": {"path": str(folder / "ledger.db")},
    }  # fmt: skip
    path = folder / "frugal.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(config: Path, extra: list[str], rows: np.ndarray, requests: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = config.parent / "serve.log"
    command = [sys.executable, "-m", "frugal", "serve", str(config), "--port", str(port), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise SystemExit(f"frugal serve exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("frugal serve did not become ready in 300 s")
            time.sleep(0.2)
        latencies = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(requests + 20):
                started = time.perf_counter()
                r = client.post("/v1/endpoints/digits/predict",
                                json={"instances": [rows[i % len(rows)].tolist()]})  # fmt: skip
                if r.status_code != 200:
                    raise SystemExit(f"{r.status_code}: {r.text}")
                if i >= 20:
                    latencies.append(time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    latencies.sort()
    with sqlite3.connect(config.parent / "ledger.db") as db:
        cost = db.execute("SELECT AVG(cost_usd), AVG(overhead_usd) FROM requests").fetchone()
        runs = db.execute("SELECT COUNT(*), SUM(price_usd_per_hour) FROM runs").fetchone()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * len(latencies)) - 1],
        "usd_per_1k": 1000 * cost[0],
        "overhead_usd_per_1k": 1000 * cost[1],
        "runs": runs[0],
        "billed_usd_per_hour": runs[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "digits-lr.joblib"
        joblib.dump(LogisticRegression(max_iter=2000).fit(x[:1200], y[:1200]), model)
        results = {}
        for name, extra in (("one process", []), ("Ray Serve", ["--ray", "--address", "local"])):
            sub = folder / name.replace(" ", "-")
            sub.mkdir()
            results[name] = measure(write_config(sub, model), extra, x[1200:], args.requests)
    print("| server | p50 ms | p99 ms | $ / 1k req (ledger) | of which overhead | runs | "
          "billed $/h |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['usd_per_1k']:.6f} | "
            f"{r['overhead_usd_per_1k']:.6f} | {r['runs']} | {r['billed_usd_per_hour']:.3f} |"
        )


if __name__ == "__main__":
    main()
