"""The caching lever: Zipf traffic over 10k distinct inputs, cache off, in memory, in Redis.

    python bench/cache_bench.py --workload w1,w2 --stores off,memory,redis --connections 64 \
        --seconds 10

For each workload and store: write a frugal config (bench/configs/w1.yaml or w2.yaml plus a
cache section), start `frugal serve`, warm up, then one measured wrk run over request bodies
drawn from Zipf(s) ranks of `--distinct` inputs; afterwards read the run's own ledger for the
hit ratio, dollars and the server-side latency of hits. Redis runs as a local redis-server
started here on a free port. Prints a Markdown table and writes bench/results/cache-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
import loadgen  # noqa: E402
import models  # noqa: E402
from run import PRICE_PER_HOUR, frugal_bin, machine  # noqa: E402

ENDPOINT = {"w1": "digits", "w2": "minilm"}


def distinct_inputs(workload: str, n: int) -> list[Any]:
    """``n`` different inputs: digits rows made distinct by a tiny offset, or sentences."""
    if workload == "w1":
        rows = models.w1_rows(1797)
        return [
            [
                v + 0.001 * (i // len(rows)) if j == 0 else v
                for j, v in enumerate(rows[i % len(rows)])
            ]
            for i in range(n)
        ]
    return list(dict.fromkeys(corpus.sentences(n * 2, seed=1)))[:n]


def zipf_bodies(items: list[Any], requests: int, s: float, seed: int = 0) -> list[str]:
    """Request bodies whose inputs are drawn with probability ~ 1 / rank**s."""
    ranks = np.arange(1, len(items) + 1, dtype=np.float64)
    p = ranks**-s
    p /= p.sum()
    picks = np.random.default_rng(seed).choice(len(items), size=requests, p=p)
    return [json.dumps({"instances": [items[i]]}, separators=(",", ":")) for i in picks]


def config_for(workload: str, store: str, ledger: Path, redis_url: str | None) -> Path:
    base = yaml.safe_load((BENCH / "configs" / f"{workload}.yaml").read_text())
    for model in base["models"]:
        if model.get("path"):
            model["path"] = str((BENCH / "configs" / model["path"]).resolve())
    base["ledger"] = {"path": str(ledger)}
    if store != "off":
        cache: dict[str, Any] = {"store": store, "ttl_s": 3600, "max_entries": 100_000}
        if store == "redis":
            cache["redis_url"] = redis_url
        base["endpoints"][0]["cache"] = cache
    path = BENCH / "configs" / "generated" / f"{workload}-cache-{store}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(base))
    return path


def ledger_summary(ledger: Path, since: float, duration_s: float) -> dict[str, Any]:
    db = sqlite3.connect(ledger)
    rows = db.execute(
        "SELECT cache, latency_ms, cost_usd, saved_usd, model_usd FROM requests "
        "WHERE ts >= ? AND status = 200",
        (since,),
    ).fetchall()
    db.close()
    n = len(rows)
    hits = [r[1] for r in rows if r[0] == "hit"]  # answered from the store
    avoided = sum(1 for r in rows if r[0] in ("hit", "shared"))  # no model call of their own
    allocated = sum(r[2] for r in rows)  # model + the server's own work
    model = sum(r[4] for r in rows)
    billed = PRICE_PER_HOUR / 3600 * duration_s
    return {
        "ledger_requests": n,
        "hit_ratio": avoided / n if n else 0.0,
        "hit_p50_ms": float(np.percentile(hits, 50)) if hits else None,
        "hit_p99_ms": float(np.percentile(hits, 99)) if hits else None,
        "usd_per_1k_allocated": 1000 * allocated / n if n else None,
        "usd_per_1k_model": 1000 * model / n if n else None,
        "usd_per_1k_billed": 1000 * billed / n if n else None,
        "saved_usd": sum(r[3] for r in rows),
    }


def start_redis() -> tuple[subprocess.Popen[bytes], str, Path]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    port = loadgen.free_port()
    folder = Path(tempfile.mkdtemp(prefix="frugal-bench-redis-"))
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workload", default="w1,w2")
    p.add_argument("--stores", default="off,memory,redis")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--distinct", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=50_000, help="bodies in the cycled file")
    p.add_argument("--zipf-s", type=float, default=1.1)
    args = p.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    models.main([])  # builds data/digits-lr.joblib and configs/w1.yaml with its sha256
    redis_proc = redis_url = redis_dir = None
    if "redis" in stores:
        redis_proc, redis_url, redis_dir = start_redis()
    results = []
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = BENCH / "results" / f"cache-{stamp}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for workload in [w for w in args.workload.split(",") if w]:
            items = distinct_inputs(workload, args.distinct)
            bodies = zipf_bodies(items, args.requests, args.zipf_s)
            bodies_file = loadgen.write_bodies(
                bodies, BENCH / "data" / f"bodies-zipf-{workload}.jsonl"
            )
            for store in stores:
                ledger = logs / f"{workload}-{store}.db"
                config = config_for(workload, store, ledger, redis_url)
                port = loadgen.free_port()
                cmd = [frugal_bin(), "serve", str(config), "--port", str(port),
                       "--log-level", "warning"]  # fmt: skip
                server = loadgen.Server(f"frugal-{store}", cmd,
                                        f"http://127.0.0.1:{port}/v2/health/ready",
                                        logs / f"{workload}-{store}.log", cwd=ROOT)  # fmt: skip
                url = f"http://127.0.0.1:{port}/v1/endpoints/{ENDPOINT[workload]}/predict"
                print(f"[{workload}] cache {store} ...", flush=True)
                with server:
                    if args.warmup > 0:
                        loadgen.run_wrk(url, bodies_file, args.connections, args.warmup)
                    since = time.time()
                    res = loadgen.measure(url, bodies_file, connections=args.connections,
                                          seconds=args.seconds, warmup_s=0,
                                          server_pid=server.pid)  # fmt: skip
                time.sleep(0.5)  # the server flushed its ledger on SIGTERM; let the file settle
                res.update(ledger_summary(ledger, since, res["duration_s"]))
                res.update(workload=workload, store=store)
                results.append(res)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            shutil.rmtree(str(redis_dir), ignore_errors=True)
    out = BENCH / "results" / f"cache-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results},
                              indent=2, default=str))  # fmt: skip
    print(f"\nZipf(s={args.zipf_s}) over {args.distinct:,} distinct inputs, {args.connections} "
          f"connections, {args.seconds:g} s after {args.warmup:g} s warm-up\n")  # fmt: skip
    print(
        "| workload | cache | req/s | p50 ms | p99 ms | hit ratio | hit p50 ms (server) | "
        "hit p99 ms (server) | $ / 1k allocated | $ / 1k billed | server CPU ms/req |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:

        def f(v: Any, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        print(f"| {r['workload']} | {r['store']} | {r['rps']:.1f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {100 * r['hit_ratio']:.1f}% | {f(r['hit_p50_ms'], '.3f')} | "
              f"{f(r['hit_p99_ms'], '.3f')} | {f(r['usd_per_1k_allocated'], '.3e')} | "
              f"{f(r['usd_per_1k_billed'], '.3e')} | "
              f"{r['server_cpu_ms_per_req']:.3f} |")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
