"""Does `frugal plan` predict a replica's max req/s at the SLO? Predict it, then measure it.

    python bench/plan_validation.py --profile examples/cost-gate/profiles/digits.json \
        --config examples/cost-gate/frugal.yaml --model digits --instance c7i.large \
        --slo-ms 10 --workers 2 --connections 1,2,4,8,16,32,64 --seconds 10

1. Prediction: `frugal plan`'s capacity of one ``--instance`` replica (req/s at full use, before
   headroom) from the profile, at the SLO: min(model bound, vCPUs / server CPU per request).
2. Measurement: the same model served by `frugal serve --workers W` (the config written by
   `frugal profile --http`: no cache, ledger in a temporary folder), driven by wrk (closed loop,
   C code: little client CPU on a 2-core box) at each connection count; the measured max req/s
   at the SLO is the most req/s of a run whose p99 is within it.

Pick an instance whose vCPUs match this machine's cores: the run measures this machine. Prints
both, their ratio, and every run (req/s, p50/p99, server CPU per request, cores busy, wrk CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen as wrk  # noqa: E402

from frugal.accounting import load_catalog  # noqa: E402
from frugal.config import load_config  # noqa: E402
from frugal.optimize.loadgen import cpu_seconds  # noqa: E402
from frugal.optimize.plan import PlanInputs, make_plan  # noqa: E402
from frugal.optimize.profiles import read_profile  # noqa: E402
from frugal.optimize.serve_profile import run_folder, running_server, served_config  # noqa: E402
from frugal.optimize.target import input_specs, load_target, resolve_target, sample_items  # noqa: E402


def predict(profile: Path, instance: str, slo_ms: float) -> dict[str, Any]:
    plan = make_plan([read_profile(profile)], load_catalog(), PlanInputs(qps=1.0, slo_ms=slo_ms))
    row = next(r for r in plan.rows if r.instance == instance)
    if row.projection is None:
        raise SystemExit(f"{instance}: {row.status}: {row.reason}")
    return {
        "instance": instance,
        "req_per_s": row.projection.capacity_items_per_s,
        "limited_by": row.projection.limited_by,
        "figures": row.figures,
        "concurrency": row.level.concurrency if row.level else None,
        "server_cpu_ms": 1000 * row.level.server_cpu_s_per_request if row.level else None,
        "latency_bound_ms": row.latency_bound_ms,
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    target = resolve_target(args.config, model=args.model, threads=1, device="cpu")
    model = load_target(target)
    items, _ = sample_items(target, model, args.data)
    runs = []
    with run_folder() as folder:
        served = served_config(target, input_specs(target, model), items, folder,
                               load_config(args.config))  # fmt: skip
        bodies = wrk.write_bodies([b.decode() for b in served.bodies], folder / "bodies.txt")
        with running_server(served.config_path, workers=args.workers) as (base, pid):
            url = base + served.path
            wrk.run_wrk(url, bodies, 4, 2.0)  # warm-up
            for c in args.connections:
                before = cpu_seconds(pid)
                r = wrk.run_wrk(url, bodies, c, args.seconds)
                cpu = cpu_seconds(pid) - before
                runs.append({
                    "connections": c, "req_per_s": r["rps"], "p50_ms": r["p50_ms"],
                    "p99_ms": r["p99_ms"], "server_cpu_ms": 1000 * cpu / max(1, r["requests"]),
                    "server_cores": cpu / r["duration_s"],
                    "wrk_cores": r["client_cpu_s"] / r["duration_s"],
                    "errors": sum(r["errors"].values()),
                })  # fmt: skip
                print(json.dumps({k: round(v, 3) for k, v in runs[-1].items()}), flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--model")
    parser.add_argument(
        "--data", type=Path, help="items for a model whose inputs cannot be made up (text)"
    )
    parser.add_argument("--instance", default="c7i.large")
    parser.add_argument("--slo-ms", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", default="1,2,4,8,16,32,64",
                        type=lambda v: [int(c) for c in v.split(",")])  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    predicted = predict(args.profile, args.instance, args.slo_ms)
    print("predicted:", json.dumps(predicted), flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    runs = measure(args)
    print(f"load average after: {os.getloadavg()}")
    within = [r for r in runs if r["p99_ms"] <= args.slo_ms and r["errors"] == 0]
    if not within:
        print(f"measured: no run had p99 <= {args.slo_ms:g} ms")
        return
    best = max(within, key=lambda r: r["req_per_s"])
    ratio = predicted["req_per_s"] / best["req_per_s"]
    print(
        f"measured max req/s at p99 <= {args.slo_ms:g} ms: {best['req_per_s']:,.0f} "
        f"({best['connections']} connections, p99 {best['p99_ms']:.2f} ms); predicted "
        f"{predicted['req_per_s']:,.0f}: predicted / measured = {ratio:.2f}"
    )


if __name__ == "__main__":
    main()
