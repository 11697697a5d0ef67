"""Does the ledger tell the truth at saturation? frugal's reported utilization and $ per 1k
against the CPU the kernel counted for the server, for W1 (digits) and W2 (MiniLM).

    python bench/cost_truth.py --workload w1,w2 --connections 64 --seconds 15

For each workload: start ``frugal serve`` on the bench config (its own ledger in a temp folder),
warm up, run wrk closed-loop for ``--seconds`` with the server's CPU read from /proc around the
run (bench/loadgen.py), then read the ledger over exactly that window (``frugal report``'s own
``build_report``) and compare:

- utilization: reported = allocated / billed; measured = server CPU seconds / (wall x vCPUs);
- $ per 1k requests: model share only (what the ledger recorded before the server's own work
  was priced), model + overhead (now), and billed (the machine's price over the wall time).

Writes ``bench/results/cost-truth-<timestamp>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import run  # noqa: E402

from frugal.accounting import build_report  # noqa: E402
from frugal.accounting.prices import resolve_pricer  # noqa: E402
from frugal.config import load_config  # noqa: E402

ENDPOINTS = {"w1": "digits", "w2": "minilm"}


def config_with_own_ledger(workload: str, folder: Path) -> Path:
    """The bench config, its relative paths made absolute, writing a ledger of its own."""
    source = BENCH / "configs" / f"{workload}.yaml"
    data = yaml.safe_load(source.read_text())
    for model in data["models"]:
        if "path" in model:
            model["path"] = str((source.parent / model["path"]).resolve())
    data["ledger"] = {"path": str(folder / f"ledger-{workload}.db")}
    out = folder / f"{workload}.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def measure_one(workload: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    config = config_with_own_ledger(workload, folder)
    cfg = load_config(config)
    pricer = resolve_pricer(cfg.instance)
    port = loadgen.free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/v1/endpoints/{ENDPOINTS[workload]}/predict"
    cmd = [run.frugal_bin(), "serve", str(config), "--port", str(port), "--log-level", "warning"]
    server = loadgen.Server("frugal", cmd, f"{base}/v2/health/ready", folder / f"{workload}.log")
    bodies = loadgen.write_bodies(loadgen.make_bodies(workload), folder / f"{workload}.jsonl")
    with server:
        run.check_answer(url, bodies.read_text().splitlines()[0], workload)
        loadgen.run_wrk(url, bodies, args.connections, args.warmup)
        since = time.time()
        result = loadgen.measure(
            url, bodies, connections=args.connections, seconds=args.seconds, warmup_s=0,
            server_pid=server.pid,
        )  # fmt: skip
        until = time.time()
    report = build_report(cfg.ledger.path, since=since, until=until)
    requests = report.total.requests
    wall = until - since
    cpus = pricer.cpus
    return {
        "workload": workload,
        "connections": args.connections,
        "rps": result["rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "requests": requests,
        "wall_s": wall,
        "server_cpu_s": result["server_cpu_s"],
        "server_cpu_ms_per_request": 1000 * result["server_cpu_s"] / max(1, requests),
        "vcpus": cpus,
        "utilization_measured": result["server_cpu_s"] / (wall * cpus),
        "utilization_reported": report.utilization,
        "model_share_of_allocated": report.model_usd / report.allocated_usd
        if report.allocated_usd
        else 0.0,
        "usd_per_1k_model_only": 1000 * report.model_usd / max(1, requests),
        "usd_per_1k_model_overhead": 1000 * report.allocated_usd / max(1, requests),
        "usd_per_1k_billed": 1000 * report.billed_usd / max(1, requests),
        "billed_usd": report.billed_usd,
        "idle_usd": report.idle_usd,
        "startup_usd": report.startup_usd,
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | conns | req/s | server CPU ms/req | utilization reported | OS-measured "
        "| $/1k model only (before) | $/1k model + overhead (now) | $/1k billed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['connections']} | {r['rps']:,.0f} "
            f"| {r['server_cpu_ms_per_request']:.3f} | {100 * r['utilization_reported']:.1f}% "
            f"| {100 * r['utilization_measured']:.1f}% | {r['usd_per_1k_model_only']:.3g} "
            f"| {r['usd_per_1k_model_overhead']:.3g} | {r['usd_per_1k_billed']:.3g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="w1,w2", help="comma list of w1, w2")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--w2-backend", default="onnx")
    parser.add_argument("--w2-threads", type=int, default=1)
    args = parser.parse_args(argv)
    workloads = [w for w in args.workload.split(",") if w]
    unknown = [w for w in workloads if w not in ENDPOINTS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}: choose w1 or w2")
    run.prepare(workloads, args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="frugal-cost-truth-") as tmp:
        for workload in workloads:
            rows.append(measure_one(workload, args, Path(tmp)))
            print(table(rows[-1:]), flush=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = BENCH / "results" / f"cost-truth-{stamp}.json"
    out.write_text(json.dumps({"machine": run.machine(), "rows": rows}, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
