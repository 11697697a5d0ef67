"""$ per autoscaling policy on the four trace shapes, against the fixed fleet one would provision.

    python bench/simulate_shapes.py --profile examples/cost-gate/profiles/digits.json \
        --rate 1000 --duration 1800 --seed 1 --slo-ms 100

For each shape (steady, diurnal, spiky, ramp) at the same mean rate: every named policy, and
two fixed fleets to compare it with:

- "vs peak": the policy's own largest replica count kept up all the time, the capacity a team
  without autoscaling provisions for the same peak at the same target utilization (its cost is
  that count x price x duration; it serves at least as well, having more replicas always);
- "vs SLO-min": the smallest fixed fleet that meets the SLO (p99 within it, nothing dropped)
  over the whole trace, found by simulating 1, 2, ... replicas: a floor that only hindsight
  gives, since it is sized on the very trace it is priced on.

The seeds claim autoscaling is 12-25% cheaper than fixed capacity; the table says by how much
it is here, per shape (negative: it costs more). Simulation only; bench/simulate_validation.py
checks the simulator against a real server. Writes bench/results/simulate-shapes-*.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frugal.scale.simulate_result import SimResult
from frugal.scale.simulate_run import Request, prepare, run
from frugal.scale.traces import SHAPES, generate, write_trace

RESULTS = Path(__file__).resolve().parent / "results"


def _meets(r: SimResult) -> bool:
    return r.p99_ms <= r.slo_ms and r.dropped == 0


def smallest_fixed(base: Request, first: int) -> SimResult:
    """The fewest fixed replicas meeting the SLO, searching up from ``first``."""
    n = max(first, 1)
    while True:
        (result,) = run(prepare(Request(**{**_fields(base), "policies": (), "fixed": (n,)})))
        if _meets(result) or n >= 64:
            return result
        n += 1


def _fields(request: Request) -> dict[str, Any]:
    return {name: getattr(request, name) for name in Request.__dataclass_fields__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slo-ms", type=float, default=100.0)
    parser.add_argument("--instance", default="c7i.large")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            trace = generate(shape, rate=args.rate, duration_s=args.duration, seed=args.seed)
            path = Path(tmp) / f"{shape}.csv"
            write_trace(trace, path)
            base = Request(trace=path, profile=args.profile, instance=args.instance,
                           slo_ms=args.slo_ms, policies=("conservative", "balanced",
                                                         "aggressive"))  # fmt: skip
            prepared = prepare(base)
            results = run(prepared)
            peak = max(results[0].series.arrivals_per_s)
            first = int(peak // prepared.service.capacity_per_s()) + 1
            fixed = smallest_fixed(base, first)
            per_s = prepared.settings.replica_usd_per_hour / 3600
            for r in [*results, fixed]:
                saving = 1 - r.cost_usd / fixed.cost_usd
                at_peak = r.max_replicas * per_s * r.duration_s
                rows.append({"shape": shape, "fleet": r.label, "usd": r.cost_usd,
                             "usd_per_1k": r.usd_per_1k, "replica_hours": r.replica_hours,
                             "utilization": r.utilization, "p99_ms": r.p99_ms,
                             "over_slo_pct": r.over_slo_pct, "dropped": r.dropped,
                             "scale_events": r.scale_events, "max_replicas": r.max_replicas,
                             "saving_vs_fixed": saving, "meets_slo": _meets(r),
                             "saving_vs_peak": 1 - r.cost_usd / at_peak})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"simulate-shapes-{stamp}"
    meta = {"command": "python bench/simulate_shapes.py " + " ".join(sys.argv[1:]),
            "rate": args.rate, "duration_s": args.duration, "seed": args.seed,
            "slo_ms": args.slo_ms, "instance": args.instance, "profile": str(args.profile),
            "rows": rows}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = [
        f"`{meta['command']}`: mean {args.rate:g} req/s over {args.duration:g} s, SLO p99 "
        f"{args.slo_ms:g} ms, replicas of 1 vCPU of {args.instance}",
        "",
        "| shape | fleet | $ | $ / 1k | replica-h | util. | p99 ms | dropped | scale events |"
        " max replicas | vs peak | vs SLO-min |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        mark = "" if r["meets_slo"] else " (misses SLO)"
        lines.append(
            f"| {r['shape']} | {r['fleet']}{mark} | {r['usd']:.4f} | {r['usd_per_1k']:.6f} | "
            f"{r['replica_hours']:.2f} | {r['utilization']:.0%} | {r['p99_ms']:.1f} | "
            f"{r['dropped']} | {r['scale_events']} | {r['max_replicas']} | "
            f"{r['saving_vs_peak']:+.0%} | {r['saving_vs_fixed']:+.0%} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
