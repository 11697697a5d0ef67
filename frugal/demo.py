"""``frugal demo``: train the quickstart models, serve them for real, and show what batching buys
and what a calibrated cascade buys against the large model alone.

The server runs as its own process (``python -m frugal serve``) and is driven over HTTP, so the
numbers are a real server's, on this machine. The first 1,200 digits train both models; the
other 597, shuffled, give 300 to calibrate the cascade's threshold (``frugal.optimize.tier_runs``,
in-process) and 297 for the traffic, whose answers are compared with their labels.
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
TRAIN = slice(0, 1200)
# The other 597 images, shuffled (seeded) into calibration and traffic: the file is ordered by
# writer, so a threshold calibrated on some writers and used on others would not hold.
_UNSEEN = 1200 + np.random.default_rng(0).permutation(597)
CALIBRATE, TRAFFIC = _UNSEEN[:300], _UNSEEN[300:]


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
        estimator.fit(x[TRAIN], y[TRAIN])
        joblib.dump(estimator, dest / name)
        shas[name] = hashlib.sha256((dest / name).read_bytes()).hexdigest()
    return shas


def quickstart_config(
    shas: dict[str, str],
    *,
    max_batch_size: int,
    ledger: str,
    cache: bool = False,
    cascade_threshold: float | None = None,
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
            *(
                []
                if cascade_threshold is None
                else [
                    {
                        "name": "digits-cascade",
                        "route": {
                            "cascade": [
                                {
                                    "model": "digits-small",
                                    "accept": {"confidence": f">= {cascade_threshold!r}"},
                                },
                                {"model": "digits-large"},
                            ]
                        },
                    }
                ]
            ),
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
    accuracy: float

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
    url: str,
    bodies: list[bytes],
    n: int,
    connections: int,
    progress: Progress,
    task: Any,
    *,
    endpoint: str = "digits",
    labels: list[int] | None = None,
) -> tuple[list[float], int, float, float]:
    """Closed loop: ``connections`` keep-alive clients send ``n`` requests in all; returns the
    latencies, the errors, the wall time and the share of the distinct bodies sent whose answer
    matched ``labels`` (each image counted once, however popular: accuracy on the images, not
    on the Zipf draw, which a few popular images would decide).

    Why stdlib http.client in threads and not httpx: httpx spends milliseconds of CPU per
    request, so on a small machine the client, not the server, would set the pace.
    """
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    sent = 0
    right: dict[int, bool] = {}
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
                    i = sent % len(bodies)
                    sent += 1
                start = time.perf_counter()
                conn.request("POST", f"/v1/endpoints/{endpoint}/predict", bodies[i], headers)
                response = conn.getresponse()
                answer = response.read()
                elapsed = 1000 * (time.perf_counter() - start)
                ok = response.status == 200
                hit = ok and labels is not None and _answer(answer) == labels[i]
                with lock:
                    latencies.append(elapsed)
                    errors += not ok
                    right[i] = hit
                progress.advance(task)
        finally:
            conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return latencies, errors, wall, sum(right.values()) / max(1, len(right))


def _answer(body: bytes) -> Any:
    import json

    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
        return json.loads(body)["predictions"][0]
    return None


def calibrate_threshold(workdir: Path, shas: dict[str, str], console: Console) -> float:
    """The cascade's confidence threshold, calibrated on 300 images neither model trained on."""
    from sklearn.datasets import load_digits

    from frugal.optimize.tier_runs import calibrate
    from frugal.routing.calibrate import resolve_cascade

    x, y = load_digits(return_X_y=True)
    data = workdir / "digits-calibrate.npz"
    np.savez(data, X=x[CALIBRATE].astype(np.float32), y=y[CALIBRATE])
    config = workdir / "frugal-calibrate.yaml"
    settings = quickstart_config(
        shas, max_batch_size=64, ledger="ledger-calibrate.db", cascade_threshold=0.9
    )
    config.write_text(yaml.safe_dump(settings))
    result = calibrate(
        resolve_cascade(config, "digits-cascade"), data, max_drop=0.005, holdout=0.3,
        progress=False,
    )  # fmt: skip
    if result.chosen is None:  # no threshold keeps the large model's accuracy: escalate all
        console.print("calibration: no threshold within 0.5 points of large-only; using >= 1")
        return 1.0
    threshold = result.chosen.thresholds[0]
    console.print(
        f"calibrated on 300 unseen images: accept the small model at confidence >= "
        f"{threshold:g} ({100 * result.chosen.escalation_rate:.0f}% escalated; "
        f"within 0.5 points of large-only)"
    )
    return threshold


def run_demo(*, n_requests: int, connections: int, workdir: Path | None) -> list[RunResult]:
    from sklearn.datasets import load_digits

    console = Console(width=None if sys.stdout.isatty() else 128)  # a piped table stays whole
    workdir = Path(tempfile.mkdtemp(prefix="frugal-demo-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    with console.status("training the quickstart models (scikit-learn digits)"):
        shas = train_quickstart_models(workdir)
    console.print(f"models, configs and ledgers in [bold]{workdir}[/]")
    with console.status("calibrating the cascade's threshold"):
        threshold = calibrate_threshold(workdir, shas, console)
    digits = load_digits()
    x, y = digits.data[TRAFFIC], digits.target[TRAFFIC]
    rows = [b'{"instances": [[' + ",".join(f"{v:g}" for v in row).encode() + b"]]}" for row in x]
    # Real traffic repeats popular inputs: draw rows by Zipf(1.1) rank, the same in every run.
    ranks = np.arange(1, len(rows) + 1, dtype=np.float64) ** -1.1
    picks = np.random.default_rng(0).choice(len(rows), size=n_requests, p=ranks / ranks.sum())
    bodies = [rows[i] for i in picks]
    labels = [int(y[i]) for i in picks]
    results = []
    runs = [
        ("batch ≤ 64 + cache", "batch64-cache", 64, True, "digits"),
        ("batch ≤ 64", "batch64", 64, False, "digits"),
        ("batch 1", "batch1", 1, False, "digits"),
        ("large only", "large", 64, False, "digits-large"),
        (f"cascade ≥ {threshold:g}", "cascade", 64, False, "digits-cascade"),
    ]
    for label, name, max_batch, cache, endpoint in runs:
        ledger = workdir / f"ledger-{name}.db"
        with contextlib.suppress(FileNotFoundError):
            os.remove(ledger)
        config = workdir / f"frugal-{name}.yaml"
        settings = quickstart_config(
            shas,
            max_batch_size=max_batch,
            ledger=ledger.name,
            cache=cache,
            cascade_threshold=threshold,
        )
        config.write_text(yaml.safe_dump(settings))
        with running_server(config, free_port()) as url, _progress(console) as progress:
            task = progress.add_task(label, total=n_requests)
            latencies, errors, wall, accuracy = drive(
                url, bodies, n_requests, connections, progress, task,
                endpoint=endpoint, labels=labels,
            )  # fmt: skip
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
                accuracy=accuracy,
            )
        )
    console.print(_table(results, connections))
    console.print(
        "allocated = the instance's price x each batch's busy time, shared by its items; "
        "billed = price x the server's uptime (idle included). `frugal report --ledger "
        f"{workdir / 'ledger-batch64.db'}` shows the ledger."
    )
    large, cascade = results[-2], results[-1]
    if large.usd_per_1k_allocated > 0:
        share = cascade.usd_per_1k_allocated / large.usd_per_1k_allocated
        console.print(
            f"cascade vs large only: {100 * share:.0f}% "
            f"of its $ per 1k (allocated), accuracy {100 * cascade.accuracy:.1f}% vs "
            f"{100 * large.accuracy:.1f}% on the {len(set(picks.tolist()))} distinct traffic "
            "images (never trained or calibrated on)"
        )
        if share > 1:
            console.print(
                "the large model is cheap per item in full batches, and the escalated items reach "
                "it a few at a time: this cascade does not pay here (docs/routing.md)"
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
    table.add_column("run", no_wrap=True)
    for name in ("requests", "err", "p50 ms", "p99 ms", "req/s", "batch", "hits",
                 "accuracy", "$/1k alloc", "$/1k billed"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(
            r.label, f"{r.requests:,}", str(r.errors), f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
            f"{r.rps:,.0f}", f"{r.mean_batch:.1f}", f"{100 * r.hit_ratio:.0f}%",
            f"{100 * r.accuracy:.1f}%",
            f"{r.usd_per_1k_allocated:.2e}", f"{r.usd_per_1k_billed:.2e}",
        )  # fmt: skip
    return table


__all__ = ["quickstart_config", "run_demo", "train_quickstart_models"]
