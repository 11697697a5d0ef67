"""``frugal demo``: train the quickstart models, serve them for real, and show what batching buys.

The server runs as its own process (``python -m frugal serve``) and is driven over HTTP, so the
numbers are a real server's, on this machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from frugal.accounting import build_report
from frugal.errors import FrugalError

INSTANCE = {"type": "c7i.large"}


def train_quickstart_models(dest: Path) -> dict[str, str]:
    """Train the digits models (deterministic) into ``dest``; returns file name -> sha256."""
    import joblib
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    dest.mkdir(parents=True, exist_ok=True)
    x, y = load_digits(return_X_y=True)
    models = {
        "digits-lr.joblib": LogisticRegression(max_iter=2000),
        "digits-svc.joblib": CalibratedClassifierCV(SVC(), ensemble=False),
    }
    shas = {}
    for name, estimator in models.items():
        estimator.fit(x[:1200], y[:1200])
        joblib.dump(estimator, dest / name)
        shas[name] = hashlib.sha256((dest / name).read_bytes()).hexdigest()
    return shas


def quickstart_config(
    shas: dict[str, str], *, max_batch_size: int, ledger: str, cache: bool = False
) -> dict[str, Any]:
    inputs = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    batching = {"max_batch_size": max_batch_size, "max_wait_ms": 2, "max_queue": 4096}
    return {
        "instance": INSTANCE,
        "models": [
            {
                "name": "digits-small",
                "version": "1",
                "runtime": "sklearn",
                "path": "digits-lr.joblib",
                "sha256": shas["digits-lr.joblib"],
                "inputs": inputs,
                "batching": batching,
            },
            {
                "name": "digits-large",
                "version": "1",
                "runtime": "sklearn",
                "path": "digits-svc.joblib",
                "sha256": shas["digits-svc.joblib"],
                "inputs": inputs,
                "batching": batching,
            },
        ],
        "endpoints": [
            {
                "name": "digits",
                "model": "digits-small",
                **({"cache": {"ttl_s": 600}} if cache else {}),
            },
            {"name": "digits-large", "model": "digits-large"},
        ],
        "ledger": {"path": ledger},
    }


@dataclass(frozen=True, slots=True)
class RunResult:
    label: str
    requests: int
    errors: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    hit_ratio: float
    usd_per_1k_allocated: float
    usd_per_1k_billed: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(config: Path, port: int) -> Iterator[str]:
    """A real ``frugal serve`` process; stopped with SIGTERM (graceful) when the block ends."""
    log = (config.parent / f"{config.stem}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "frugal",
            "serve",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise FrugalError(f"the server exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise FrugalError(f"the server did not become ready in 60 s; see {log.name}")
            time.sleep(0.1)  # a child process's readiness has nothing to await but the socket
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def drive(
    url: str, bodies: list[bytes], n: int, connections: int, progress: Progress, task: Any
) -> tuple[list[float], int, float]:
    """Closed loop: ``connections`` keep-alive clients send ``n`` requests in all.

    Why stdlib http.client in threads and not httpx: httpx spends milliseconds of CPU per
    request, so on a small machine the client, not the server, would set the pace.
    """
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    sent = 0
    lock = threading.Lock()
    headers = {"content-type": "application/json"}

    def worker() -> None:
        nonlocal sent, errors
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            while True:
                with lock:
                    if sent >= n:
                        return
                    body = bodies[sent % len(bodies)]
                    sent += 1
                start = time.perf_counter()
                conn.request("POST", "/v1/endpoints/digits/predict", body, headers)
                response = conn.getresponse()
                response.read()
                elapsed = 1000 * (time.perf_counter() - start)
                with lock:
                    latencies.append(elapsed)
                    errors += response.status != 200
                progress.advance(task)
        finally:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - start


def run_demo(*, n_requests: int, connections: int, workdir: Path | None) -> list[RunResult]:
    from sklearn.datasets import load_digits

    console = Console(width=None if sys.stdout.isatty() else 110)  # a piped table stays whole
    workdir = Path(tempfile.mkdtemp(prefix="frugal-demo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    with console.status("training the quickstart models (scikit-learn digits)"):
        shas = train_quickstart_models(workdir)
    console.print(f"models, configs and ledgers in [bold]{workdir}[/]")
    x = load_digits().data[1200:]
    rows = [b'{"instances": [[' + ",".join(f"{v:g}" for v in row).encode() + b"]]}" for row in x]
    # Real traffic repeats popular inputs: draw rows by Zipf(1.1) rank, the same in every run.
    ranks = np.arange(1, len(rows) + 1, dtype=np.float64) ** -1.1
    picks = np.random.default_rng(0).choice(len(rows), size=n_requests, p=ranks / ranks.sum())
    bodies = [rows[i] for i in picks]
    results = []
    runs = [("batch ≤ 64 + cache", 64, True), ("batch ≤ 64", 64, False), ("batch 1", 1, False)]
    for label, max_batch, cache in runs:
        name = f"batch{max_batch}" + ("-cache" if cache else "")
        ledger = workdir / f"ledger-{name}.db"
        with contextlib.suppress(FileNotFoundError):
            os.remove(ledger)
        config = workdir / f"frugal-{name}.yaml"
        settings = quickstart_config(
            shas, max_batch_size=max_batch, ledger=ledger.name, cache=cache
        )
        config.write_text(yaml.safe_dump(settings))
        with running_server(config, free_port()) as url, _progress(console) as progress:
            task = progress.add_task(label, total=n_requests)
            latencies, errors, wall = drive(url, bodies, n_requests, connections, progress, task)
        report = build_report(ledger)
        lat = np.array(latencies)
        results.append(
            RunResult(
                label=label,
                requests=len(latencies),
                errors=errors,
                wall_s=wall,
                p50_ms=float(np.percentile(lat, 50)),
                p99_ms=float(np.percentile(lat, 99)),
                mean_batch=report.total.mean_batch_size,
                hit_ratio=report.total.cache_hit_ratio,
                usd_per_1k_allocated=report.total.usd_per_1k,
                usd_per_1k_billed=1000 * report.billed_usd / max(1, report.total.requests),
            )
        )
    console.print(_table(results, connections))
    console.print(
        "allocated = the instance's price x each batch's busy time, shared by its items; "
        "billed = price x the server's uptime (idle included). `frugal report --ledger "
        f"{workdir / 'ledger-batch64.db'}` shows the ledger."
    )
    return results


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _table(results: list[RunResult], connections: int) -> Table:
    table = Table(title=f"digits, one row a request, {connections} connections, c7i.large prices")
    for name in ("run", "requests", "err", "p50 ms", "p99 ms", "req/s", "batch", "hits",
                 "$/1k alloc", "$/1k billed"):  # fmt: skip
        table.add_column(name, justify="left" if name == "run" else "right")
    for r in results:
        table.add_row(
            r.label, f"{r.requests:,}", str(r.errors), f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
            f"{r.rps:,.0f}", f"{r.mean_batch:.1f}", f"{100 * r.hit_ratio:.0f}%",
            f"{r.usd_per_1k_allocated:.2e}", f"{r.usd_per_1k_billed:.2e}",
        )  # fmt: skip
    return table


__all__ = ["quickstart_config", "run_demo", "train_quickstart_models"]
