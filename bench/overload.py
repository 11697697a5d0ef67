"""A slow model at 10x its capacity: what clients get with and without admission by expected wait.

Issue 14, finding 3: with the default ``max_queue`` (1024) and a model that answers 38 requests a
second, the queue held 27 s of work against a 2 s timeout, so an overload came back as 504s
after the whole timeout. This runs the same server twice, ``batching.admit_wait_factor: 0``
(max_queue only, the old rule) and ``1`` (the default: refuse what would finish past its
deadline), under the same open-loop load, and reports per run: requests by status, the share of
refusals that are 503 with Retry-After, how soon the 503s and 504s came back, and the latency of
the admitted (200) requests, as the client saw them and as the server's ledger has them. Open
loop: request i starts at t0 + i/rate whatever happened before, and the client's latency is
measured from that scheduled start.

The model is scikit-learn's LogisticRegression on the bundled digits, trained at load, that
sleeps ``--per-item-ms`` per item after predicting: a model of known throughput (1000 /
per-item-ms items a second, whatever the batch size) that takes no CPU while it sleeps.

    python bench/overload.py                       # 38 req/s model, 2 s timeout, 10x for 20 s
    python bench/overload.py --factor 10 --seconds 20 --per-item-ms 26.3 --timeout-ms 2000

Results: a markdown table on stdout and JSON in bench/results/overload-<time>.json; the
servers' configs, ledgers and logs go to a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from loadgen import Server, free_port, send_on_schedule  # noqa: E402  (bench/ scripts import their siblings)


class SlowDigits:
    """Digits LogisticRegression, then a sleep per item: the slow model under test."""

    def __init__(self, per_item_ms: float) -> None:
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression

        x, y = load_digits(return_X_y=True)
        self.model = LogisticRegression(max_iter=2000).fit(x, y)
        self.per_item_s = per_item_ms / 1000

    def predict_batch(self, items: Sequence[Any]) -> list[int]:
        labels = self.model.predict(np.stack([np.asarray(i, dtype=np.float64) for i in items]))
        time.sleep(self.per_item_s * len(items))  # slow on purpose: a known throughput
        return [int(label) for label in labels]


def make_slow_model(per_item_ms: float) -> SlowDigits:
    return SlowDigits(per_item_ms)


def write_config(folder: Path, args: argparse.Namespace, admit_wait_factor: float) -> Path:
    import yaml

    config = {
        "instance": {"price_usd_per_hour": 0.0464, "slots": 2},
        "models": [{
            "name": "slow", "runtime": "python", "path": str(BENCH),
            "factory": "overload:make_slow_model",
            "options": {"per_item_ms": args.per_item_ms},
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
            "batching": {"max_batch_size": args.max_batch_size, "max_queue": args.max_queue,
                         "timeout_ms": args.timeout_ms, "admit_wait_factor": admit_wait_factor},
        }],
        "endpoints": [{"name": "slow", "model": "slow"}],
        "ledger": {"path": str(folder / f"ledger-{admit_wait_factor:g}.db")},
    }  # fmt: skip
    path = folder / f"overload-{admit_wait_factor:g}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _post(host: str, port: int, request: bytes) -> tuple[int, str | None]:
    """One request on its own connection: (status, Retry-After or None)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        status = int((await reader.readline()).split(b" ", 2)[1])
        retry_after = None
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"retry-after":
                retry_after = value.strip().decode()
        if length:
            await reader.readexactly(length)
        return status, retry_after
    finally:
        writer.close()


async def open_loop(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """Request i starts at t0 + i/rate; returns every answer as (status, latency_ms, retry)."""
    head = (
        "POST /v1/endpoints/slow/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nConnection: close\r\nContent-Length: {n}\r\n\r\n"
    )
    requests = [head.format(n=len(b)).encode() + b for b in bodies]
    answers: list[tuple[int, float, str | None]] = []

    async def one(i: int, at: float) -> None:
        try:
            status, retry = await asyncio.wait_for(
                _post("127.0.0.1", port, requests[i % len(requests)]), 60
            )
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError):
            status, retry = -1, None
        answers.append((status, 1000 * (time.perf_counter() - at), retry))

    lag = await send_on_schedule(rate, int(rate * seconds), one, time.perf_counter() + 0.05)
    return {"answers": answers, "client_max_lag_ms": 1000 * lag}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summarize(answers: list[tuple[int, float, str | None]]) -> dict[str, Any]:
    by: dict[int, list[float]] = {}
    for status, ms, _ in answers:
        by.setdefault(status, []).append(ms)
    refused = [a for a in answers if a[0] in (503, 504)]
    with_retry = [a for a in answers if a[0] == 503 and a[2] is not None]
    retry_values = sorted({int(a[2]) for a in with_retry if a[2] is not None})
    return {
        "sent": len(answers),
        "by_status": {str(k): len(v) for k, v in sorted(by.items())},
        "refusals_503_with_retry_after_pct": 100 * len(with_retry) / len(refused)
        if refused
        else float("nan"),
        "retry_after_values_s": retry_values,
        "ok_p50_ms": pct(by.get(200, []), 50),
        "ok_p99_ms": pct(by.get(200, []), 99),
        "r503_p50_ms": pct(by.get(503, []), 50),
        "r503_p99_ms": pct(by.get(503, []), 99),
        "r503_mean_ms": statistics.fmean(by[503]) if by.get(503) else float("nan"),
        "r504_p50_ms": pct(by.get(504, []), 50),
        "r504_p99_ms": pct(by.get(504, []), 99),
    }


def run_one(args: argparse.Namespace, folder: Path, factor: float) -> dict[str, Any]:
    import httpx
    from sklearn.datasets import load_digits

    config = write_config(folder, args, factor)
    port = free_port()
    frugal = str(Path(sys.executable).with_name("frugal"))
    rows = load_digits().data[:200]
    bodies = [json.dumps({"instances": [r.tolist()]}).encode() for r in rows]
    server = Server(
        name=f"frugal-factor-{factor:g}",
        cmd=[frugal, "serve", str(config), "--port", str(port)],
        health_url=f"http://127.0.0.1:{port}/v2/health/ready",
        log_path=folder / f"serve-{factor:g}.log",
    )
    with server:
        with httpx.Client(timeout=30) as client:  # the batcher measures the model first
            for body in bodies[:20]:
                client.post(
                    f"http://127.0.0.1:{port}/v1/endpoints/slow/predict",
                    content=body,
                    headers={"content-type": "application/json"},
                ).raise_for_status()
        rate = args.factor * 1000 / args.per_item_ms
        since = time.time()
        run = asyncio.run(open_loop(port, bodies, rate, args.seconds))
    out = summarize(run["answers"])
    out.update(admit_wait_factor=factor, rate=rate, client_max_lag_ms=run["client_max_lag_ms"])
    out.update(server_side(folder / f"ledger-{factor:g}.db", since))
    return out


def server_side(ledger: Path, since: float) -> dict[str, float]:
    """The ledger's latencies (request read to answer): the queue's doing, without the time a
    request spent in the client, the kernel's backlog or HTTP parsing before frugal saw it."""
    import sqlite3

    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT status, latency_ms, ts FROM requests WHERE ts >= ?", (since,)
        ).fetchall()
    ok = [ms for status, ms, _ in rows if status == 200]
    # Received after the first 3 s (ts is when answered): the fit has seen full batches by then.
    settled = [ms for status, ms, ts in rows if status == 200 and ts - ms / 1000 >= since + 3]
    refused = [ms for status, ms, _ in rows if status == 503]
    return {"server_ok_p50_ms": pct(ok, 50), "server_ok_p99_ms": pct(ok, 99),
            "server_ok_p99_after_3s_ms": pct(settled, 99),
            "server_503_p99_ms": pct(refused, 99)}  # fmt: skip


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| admit_wait_factor | sent | 200 | 503 | 504 | other | 503 w/ Retry-After, % of "
        "refusals | 503 p50 / p99 ms | 504 p50 ms | admitted p50 / p99 ms | server-side: "
        "admitted p50 / p99 (after 3 s), 503 p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["by_status"]
        other = r["sent"] - sum(s.get(k, 0) for k in ("200", "503", "504"))
        lines.append(
            f"| {r['admit_wait_factor']:g} | {r['sent']} | {s.get('200', 0)} | "
            f"{s.get('503', 0)} | {s.get('504', 0)} | {other} | "
            f"{r['refusals_503_with_retry_after_pct']:.1f} | "
            f"{r['r503_p50_ms']:.1f} / {r['r503_p99_ms']:.1f} | {r['r504_p50_ms']:.0f} | "
            f"{r['ok_p50_ms']:.0f} / {r['ok_p99_ms']:.0f} | {r['server_ok_p50_ms']:.0f} / "
            f"{r['server_ok_p99_ms']:.0f} ({r['server_ok_p99_after_3s_ms']:.0f}), "
            f"{r['server_503_p99_ms']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--per-item-ms", type=float, default=26.3, help="model sleep per item")
    p.add_argument("--factor", type=float, default=10.0, help="load as a multiple of capacity")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the open-loop run")
    p.add_argument("--timeout-ms", type=float, default=2000.0, help="batching.timeout_ms")
    p.add_argument("--max-queue", type=int, default=1024, help="batching.max_queue")
    p.add_argument("--max-batch-size", type=int, default=32, help="batching.max_batch_size")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    out = args.out / f"overload-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix="frugal-overload-") as tmp:  # configs, ledgers, logs
        results = [run_one(args, Path(tmp), factor) for factor in (0.0, 1.0)]
    print(table(results))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "runs": results}, indent=2))  # fmt: skip
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
