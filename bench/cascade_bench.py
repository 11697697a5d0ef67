"""The cascade lever: small-only vs large-only vs a calibrated cascade, on held-out digits.

    python bench/cascade_bench.py --connections 16 --seconds 10 [--items-per-request 8]

scikit-learn's digits (1,797 images, bundled), shuffled with a fixed seed: 1,000 train a small
model (logistic regression) and a large one (3-nearest neighbours over the 1,000 training
images: more accurate, and tens of times the compute per item); 400 calibrate the cascade's
confidence threshold with `frugal calibrate` (or take --threshold); the other 397 are the test
set, never seen before. --sequential splits in file order instead, which puts writers in the
test set that training never saw. For each of the three endpoints a real `frugal serve` runs:
- accuracy: every test image once, one request each, answers compared with the labels;
- load: wrk cycles the test images as requests of --items-per-request images for --seconds at
  --connections; req/s and p50/p99 come from wrk, $ per 1k items (allocated: busy time priced,
  DESIGN.md) and the share of items that escalated come from that run's own ledger.
Prints a Markdown table and writes bench/results/cascade-<stamp>.json.
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
from sklearn.neighbors import KNeighborsClassifier

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from run import PRICE_PER_HOUR, frugal_bin, machine  # noqa: E402

from frugal.runtimes import sha256_of  # noqa: E402

# A seeded shuffle: the file is ordered by groups of writers, so a sequential split would test a
# shift of writers (see --sequential), not how a threshold generalizes to the same traffic.
ORDER = np.random.default_rng(0).permutation(1797)
TRAIN, CALIBRATE, TEST = ORDER[:1000], ORDER[1000:1400], ORDER[1400:]
INPUTS = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]


def build_models(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    small, large = folder / "digits-small.joblib", folder / "digits-large.joblib"
    joblib.dump(LogisticRegression(max_iter=3000).fit(x[TRAIN], y[TRAIN]), small)
    joblib.dump(KNeighborsClassifier(3).fit(x[TRAIN], y[TRAIN]), large)
    np.savez(folder / "calibrate.npz", X=x[CALIBRATE], y=y[CALIBRATE])
    return small, large, x, y


def write_config(folder: Path, name: str, small: Path, large: Path, threshold: float) -> Path:
    def model(model_name: str, path: Path) -> dict[str, Any]:
        batching = {"max_batch_size": 64, "max_wait_ms": 2, "timeout_ms": 10000}
        return {"name": model_name, "version": "1", "runtime": "sklearn", "path": str(path),
                "sha256": sha256_of(path), "inputs": INPUTS, "batching": batching}  # fmt: skip

    endpoint: dict[str, Any] = {"name": "digits"}
    if name == "small-only":
        endpoint["model"] = "digits-small"
    elif name == "large-only":
        endpoint["model"] = "digits-large"
    else:
        endpoint["route"] = {"cascade": [
            {"model": "digits-small", "accept": {"confidence": f">= {threshold}"}},
            {"model": "digits-large"}]}  # fmt: skip
    config = {
        "instance": {"type": "c7i.large"},
        "models": [model("digits-small", small), model("digits-large", large)],
        "endpoints": [endpoint],
        "ledger": {"path": str(folder / f"ledger-{name}.db")},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def calibrated_threshold(folder: Path, small: Path, large: Path, max_drop: float) -> float:
    """`frugal calibrate` on the calibration split; it writes the chosen threshold in place."""
    config = write_config(folder, "cascade", small, large, 0.9)
    out = folder / "calibration.json"
    done = subprocess.run(
        [frugal_bin(), "calibrate", str(config), "--endpoint", "digits",
         "--data", str(folder / "calibrate.npz"), "--max-drop", str(max_drop), "--out", str(out),
         "--plot", str(folder / "calibration.png")],
        capture_output=True, text=True,
    )  # fmt: skip
    print(done.stdout[-3000:], done.stderr[-2000:])
    if done.returncode != 0:
        raise SystemExit(f"frugal calibrate failed ({done.returncode}); pass --threshold")
    chosen = json.loads(out.read_text())["chosen"]["calibration"]["thresholds"][0]
    return float(chosen)


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
            "SELECT cost_usd, route, items FROM requests WHERE ts >= ? AND status = 200", (since,)
        ).fetchall()
    items = sum(r[2] for r in rows)
    # A route reads "digits-small:1*7>digits-large:1*1": items that stopped at each tier.
    escalated = sum(int(route.split(">")[1].split("*")[1]) for _, route, _ in rows if ">" in route)
    return {
        "ledger_requests": len(rows),
        "items": items,
        "usd_per_1k_allocated": 1000 * sum(r[0] for r in rows) / items if items else None,
        "escalated_share": escalated / items if items and any(r[1] for r in rows) else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--threshold", type=float, help="skip calibration and use this confidence")
    p.add_argument("--max-drop", type=float, default=0.005, help="for frugal calibrate")
    p.add_argument("--sequential", action="store_true", help="split in file order, not shuffled")
    p.add_argument("--items-per-request", type=int, default=1)
    args = p.parse_args(argv)
    if args.sequential:
        global TRAIN, CALIBRATE, TEST
        TRAIN, CALIBRATE, TEST = np.arange(1000), np.arange(1000, 1400), np.arange(1400, 1797)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = BENCH / "results" / f"cascade-{stamp}"
    small, large, x, y = build_models(folder)
    threshold = args.threshold
    if threshold is None:
        threshold = calibrated_threshold(folder, small, large, args.max_drop)
    k = args.items_per_request
    rows = x[TEST]
    bodies = [json.dumps({"instances": [r.tolist() for r in rows[i : i + k]]})
              for i in range(0, len(rows) - k + 1, k)]  # fmt: skip
    bodies_file = loadgen.write_bodies(bodies, folder / "bodies-test.jsonl")
    results = []
    for name in ("small-only", "large-only", "cascade"):
        config = write_config(folder, name, small, large, threshold)
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
                                  server_pid=server.pid)  # fmt: skip
        time.sleep(0.5)
        res.update(ledger_summary(folder / f"ledger-{name}.db", since))
        res.update(endpoint=name, accuracy=acc)
        results.append(res)
    out = BENCH / "results" / f"cascade-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "threshold": threshold,
                               "price_usd_per_hour": PRICE_PER_HOUR, "results": results},
                              indent=2, default=str))  # fmt: skip
    large_row = next(r for r in results if r["endpoint"] == "large-only")
    print(f"\ndigits test set ({len(TEST)} images never seen in training or "
          f"calibration), cascade threshold confidence >= {threshold:g}; load: "
          f"{args.connections} connections, {args.seconds:g} s\n")  # fmt: skip
    print(f"{k} image(s) a request\n")
    print("| endpoint | accuracy | $ / 1k items (allocated) | vs large-only | escalated | req/s "
          "| p50 ms | p99 ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = r["usd_per_1k_allocated"] / large_row["usd_per_1k_allocated"]
        esc = "-" if r["escalated_share"] is None else f"{100 * r['escalated_share']:.1f}%"
        print(f"| {r['endpoint']} | {100 * r['accuracy']:.2f}% | {r['usd_per_1k_allocated']:.3e} "
              f"| {100 * ratio:.0f}% | {esc} | {r['rps']:.0f} | {r['p50_ms']:.2f} "
              f"| {r['p99_ms']:.2f} |")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
