"""The cascade lever: small-only vs large-only vs a calibrated cascade, on held-out digits.

    python bench/cascade_bench.py --connections 16 --seconds 10 [--items-per-request 8]
    python bench/cascade_bench.py --task cnn --connections 16 --seconds 10 --large-wait-ms 5

scikit-learn's digits (1,797 images, bundled), shuffled with a fixed seed: 1,000 train a small
model (logistic regression) and a large one (--task, bench/cascade_models.py): `knn` (the
default, the first benchmark: 3-nearest neighbours over the 1,000 training images, cheap per
item once batched) or `cnn` (a convolutional network averaged over 9 shifted views of each
image, torch, compute-bound per item). 400 images calibrate the cascade's confidence threshold
with `frugal calibrate` (or take --threshold; --arrival-batch is passed on to it); the other 397
are the test set, never seen before. --sequential splits in file order instead, which puts
writers in the test set that training never saw. --small-runtime onnx converts the small model
with skl2onnx and serves it with ONNX Runtime, whose fixed cost a call is lower.
For each endpoint a real `frugal serve` runs:
- accuracy: every test image once, one request each, answers compared with the labels;
- load: wrk cycles the test images as requests of --items-per-request images for --seconds at
  --connections (or, with --rate R, open loop: R requests/s offered to every endpoint alike,
  latency from each request's scheduled start); req/s and p50/p99 come from the load generator,
  $ per 1k items (allocated: busy time priced, DESIGN.md), the share of items that escalated and
  the large tier's mean batch come from that run's own ledger.
--large-wait-ms W adds a fourth endpoint, the same cascade whose large tier runs 2 workers and
lets a free one wait up to W ms for company while the other is busy (docs/batching.md), so the
escalated items of concurrent requests share batches. --large-linger-ms L adds another: the large
tier on 1 worker with `linger_ms: L`, so an escalated item that finds it idle waits for company.
Prints a Markdown table and writes bench/results/cascade-<stamp>.json (cascade-cnn-<stamp>.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import cascade_models  # noqa: E402
import loadgen  # noqa: E402
from run import PRICE_PER_HOUR, frugal_bin, machine  # noqa: E402

from frugal.runtimes import sha256_of  # noqa: E402

# A seeded shuffle: the file is ordered by groups of writers, so a sequential split would test a
# shift of writers (see --sequential), not how a threshold generalizes to the same traffic.
ORDER = np.random.default_rng(0).permutation(1797)
TRAIN, CALIBRATE, TEST = ORDER[:1000], ORDER[1000:1400], ORDER[1400:]
INPUTS = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]


def build_models(
    folder: Path, task: str, small_runtime: str = "sklearn"
) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    lr = LogisticRegression(max_iter=3000).fit(x[TRAIN], y[TRAIN])
    if small_runtime == "onnx":  # the same fitted model, run by ONNX Runtime
        small = cascade_models.to_onnx(lr, folder / "digits-small.onnx")
    else:
        small = folder / "digits-small.joblib"
        joblib.dump(lr, small)
    if task == "cnn":
        t0 = time.perf_counter()
        large = cascade_models.train_cnn(x[TRAIN], y[TRAIN], folder / "digits-large.pt2")
        print(f"trained the cnn in {time.perf_counter() - t0:.1f} s", flush=True)
    else:
        large = cascade_models.train_knn(x[TRAIN], y[TRAIN], folder / "digits-large.joblib")
    np.savez(folder / "calibrate.npz", X=x[CALIBRATE], y=y[CALIBRATE])
    return small, large, x, y


def write_config(folder: Path, name: str, small: Path, large: Path, threshold: float,
                 task: str = "knn", large_wait_ms: float = 2.0,
                 large_linger_ms: float = 0.0) -> Path:  # fmt: skip
    def model(model_name: str, path: Path, **batching: Any) -> dict[str, Any]:
        batching = {"max_batch_size": 64, "max_wait_ms": 2, "timeout_ms": 10000, **batching}
        runtime = {".pt2": "torch", ".onnx": "onnx"}.get(path.suffix, "sklearn")
        options = cascade_models.model_options(task) if runtime == "torch" else {}
        return {"name": model_name, "version": "1", "runtime": runtime, "path": str(path),
                "sha256": sha256_of(path), "inputs": INPUTS, "batching": batching,
                **({"options": options} if options else {})}  # fmt: skip

    endpoint: dict[str, Any] = {"name": "digits"}
    if name == "small-only":
        endpoint["model"] = "digits-small"
    elif name == "large-only":
        endpoint["model"] = "digits-large"
    else:
        endpoint["route"] = {"cascade": [
            {"model": "digits-small", "accept": {"confidence": f">= {threshold}"}},
            {"model": "digits-large"}]}  # fmt: skip
    # The large tier's batching in the variants: "cascade-wait": its 2 workers let escalated
    # items of concurrent requests gather for up to large_wait_ms while the other worker runs
    # (max_wait_ms needs workers > 1); "cascade-linger": an escalated item that finds it idle
    # waits up to large_linger_ms for company.
    wait = {
        "cascade-wait": {"workers": 2, "max_wait_ms": large_wait_ms},
        "cascade-linger": {"linger_ms": large_linger_ms},
    }.get(name, {})
    config = {
        "instance": {"type": "c7i.large"},
        "models": [model("digits-small", small), model("digits-large", large, **wait)],
        "endpoints": [endpoint],
        "ledger": {"path": str(folder / f"ledger-{name}.db")},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def calibrate(
    folder: Path, small: Path, large: Path, args: argparse.Namespace
) -> tuple[float, dict[str, Any]]:
    """`frugal calibrate` on the calibration split: the chosen threshold, and what calibration
    predicted for it (cost against large-only, held-out accuracy)."""
    config = write_config(folder, "cascade", small, large, 0.9, args.task)
    out = folder / "calibration.json"
    arrival = [] if args.arrival_batch is None else ["--arrival-batch", str(args.arrival_batch)]
    done = subprocess.run(
        [frugal_bin(), "calibrate", str(config), "--endpoint", "digits",
         "--data", str(folder / "calibrate.npz"), "--max-drop", str(args.max_drop),
         "--confidence", str(args.confidence), "--out", str(out),
         "--plot", str(folder / "calibration.png"), *arrival],
        capture_output=True, text=True,
    )  # fmt: skip
    print(done.stdout[-3500:], done.stderr[-2000:])
    if done.returncode != 0:
        raise SystemExit(f"frugal calibrate failed ({done.returncode}); pass --threshold")
    report = json.loads(out.read_text())
    chosen, large_alone = report["chosen"], report["tiers"][-1]["alone"]
    predicted = {
        part: {"cost_vs_large_only": chosen[part]["usd_per_1k"] / large_alone[part]["usd_per_1k"],
               "accuracy": chosen[part]["accuracy"],
               "large_accuracy": large_alone[part]["accuracy"],
               "escalated": chosen[part]["escalation_rate"]}
        for part in ("calibration", "holdout")
    }  # fmt: skip
    return float(chosen["calibration"]["thresholds"][0]), predicted


def accuracy(url: str, x: np.ndarray, y: np.ndarray) -> float:
    def one(i: int) -> bool:
        r = httpx.post(url, json={"instances": [x[i].tolist()]}, timeout=30)
        r.raise_for_status()
        return bool(r.json()["predictions"][0] == y[i])

    with ThreadPoolExecutor(8) as pool:
        right = list(pool.map(one, range(len(x))))
    return sum(right) / len(right)


def ledger_summary(ledger: Path, since: float) -> dict[str, Any]:
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT model_usd, route, items, overhead_usd FROM requests "
            "WHERE ts >= ? AND status = 200",
            (since,),
        ).fetchall()
    items = sum(r[2] for r in rows)
    # A route reads "digits-small:1*7>digits-large:1*1": items that stopped at each tier.
    escalated = sum(
        int(route.split(">")[1].split("*")[1]) for _, route, _, _ in rows if ">" in route
    )
    with sqlite3.connect(ledger) as db:
        large_batch = db.execute(
            "SELECT AVG(size), COUNT(*) FROM batches WHERE ts >= ? AND model = 'digits-large'",
            (since,),
        ).fetchone()
    return {
        "large_mean_batch": large_batch[0],
        "large_batches": large_batch[1],
        "ledger_requests": len(rows),
        "items": items,
        # The models' busy time (what the cascade changes), and the server's own work on top.
        "usd_per_1k_model": 1000 * sum(r[0] for r in rows) / items if items else None,
        "usd_per_1k_overhead": 1000 * sum(r[3] for r in rows) / items if items else None,
        "usd_per_1k_allocated": 1000 * sum(r[0] + r[3] for r in rows) / items if items else None,
        "escalated_share": escalated / items if items and any(r[1] for r in rows) else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, help="open loop at this many requests/s, not wrk")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--threshold", type=float, help="skip calibration and use this confidence")
    p.add_argument("--max-drop", type=float, default=0.005, help="for frugal calibrate")
    # 200 calibration items cannot vouch for half a point at 95% (docs/routing.md#confidence);
    # the documented runs chose on the point estimate, which is what 0 asks for.
    p.add_argument("--confidence", type=float, default=0.0, help="for frugal calibrate")
    p.add_argument("--sequential", action="store_true", help="split in file order, not shuffled")
    p.add_argument("--items-per-request", type=int, default=1)
    p.add_argument(
        "--task",
        choices=("knn", "cnn"),
        default="knn",
        help="the large tier: knn (the first benchmark) or cnn (cascade_models.py)",
    )
    p.add_argument("--arrival-batch", type=int, help="passed on to frugal calibrate")
    p.add_argument("--small-runtime", choices=("sklearn", "onnx"), default="sklearn",
                   help="run the small tier's logistic regression in scikit-learn or, converted "
                        "by skl2onnx, in ONNX Runtime (less fixed cost a call)")  # fmt: skip
    p.add_argument("--large-wait-ms", type=float,
                   help="add a cascade whose large tier runs 2 workers, the free one waiting "
                        "up to this long for company")  # fmt: skip
    p.add_argument("--large-linger-ms", type=float,
                   help="add a cascade whose large tier lets an item that finds it idle wait "
                        "up to this long for company (batching.linger_ms)")  # fmt: skip
    args = p.parse_args(argv)
    if args.sequential:
        global TRAIN, CALIBRATE, TEST
        TRAIN, CALIBRATE, TEST = np.arange(1000), np.arange(1000, 1400), np.arange(1400, 1797)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = "cascade" if args.task == "knn" else f"cascade-{args.task}"
    folder = BENCH / "results" / f"{name}-{stamp}"
    small, large, x, y = build_models(folder, args.task, args.small_runtime)
    threshold, predicted = args.threshold, None
    if threshold is None:
        threshold, predicted = calibrate(folder, small, large, args)
    k = args.items_per_request
    rows = x[TEST]
    bodies = [json.dumps({"instances": [r.tolist() for r in rows[i : i + k]]})
              for i in range(0, len(rows) - k + 1, k)]  # fmt: skip
    bodies_file = loadgen.write_bodies(bodies, folder / "bodies-test.jsonl")
    results = []
    endpoints = ["small-only", "large-only", "cascade"]
    if args.large_wait_ms is not None:
        endpoints.append("cascade-wait")
    if args.large_linger_ms is not None:
        endpoints.append("cascade-linger")
    for name in endpoints:
        config = write_config(folder, name, small, large, threshold, args.task,
                              args.large_wait_ms or 2.0, args.large_linger_ms or 0.0)  # fmt: skip
        port = loadgen.free_port()
        cmd = [frugal_bin(), "serve", str(config), "--port", str(port), "--log-level", "warning"]
        server = loadgen.Server(name, cmd, f"http://127.0.0.1:{port}/v2/health/ready",
                                folder / f"{name}.log", cwd=ROOT)  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1/endpoints/digits/predict"
        print(f"[{name}] ...", flush=True)
        with server:
            acc = accuracy(url, x[TEST], y[TEST])
            since = time.time()
            res = loadgen.measure(url, bodies_file, connections=args.connections,
                                  seconds=args.seconds, warmup_s=args.warmup,
                                  mode="closed" if args.rate is None else "open",
                                  rate=args.rate or 0.0,
                                  server_pid=server.pid)  # fmt: skip
        time.sleep(0.5)
        res.update(ledger_summary(folder / f"ledger-{name}.db", since))
        res.update(endpoint=name, accuracy=acc)
        results.append(res)
    out = BENCH / "results" / f"{folder.name}.json"
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "threshold": threshold,
                               "calibrate_predicted": predicted,
                               "price_usd_per_hour": PRICE_PER_HOUR, "results": results},
                              indent=2, default=str))  # fmt: skip
    large_row = next(r for r in results if r["endpoint"] == "large-only")
    load = f"open loop {args.rate:g} req/s" if args.rate else f"{args.connections} connections"
    print(f"\ndigits test set ({len(TEST)} images never seen in training or "
          f"calibration), cascade threshold confidence >= {threshold:g}; load: "
          f"{load}, {args.seconds:g} s\n")  # fmt: skip
    print(f"{k} image(s) a request\n")
    print(
        "| endpoint | accuracy | $ / 1k items (model) | vs large-only | $ / 1k items (model "
        "+ overhead) | vs large-only | escalated | req/s | p50 ms | p99 ms | large batch |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        model = r["usd_per_1k_model"] / large_row["usd_per_1k_model"]
        total = r["usd_per_1k_allocated"] / large_row["usd_per_1k_allocated"]
        esc = "-" if r["escalated_share"] is None else f"{100 * r['escalated_share']:.1f}%"
        batch = "-" if r["large_mean_batch"] is None else f"{r['large_mean_batch']:.2f}"
        print(f"| {r['endpoint']} | {100 * r['accuracy']:.2f}% | {r['usd_per_1k_model']:.3e} "
              f"| {100 * model:.0f}% | {r['usd_per_1k_allocated']:.3e} | {100 * total:.0f}% "
              f"| {esc} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {batch} |")  # fmt: skip
    if predicted is not None:
        held = predicted["holdout"]
        print(f"\nfrugal calibrate predicted, held-out part: cascade at "
              f"{100 * held['cost_vs_large_only']:.0f}% of large-only's $, accuracy "
              f"{100 * held['accuracy']:.2f}% vs {100 * held['large_accuracy']:.2f}%")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
