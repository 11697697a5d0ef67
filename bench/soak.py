"""The hostile-load soak (issue 14): a real `frugal serve` under open-loop overload, with slow
clients, a Redis restart and a health prober, and a report against the issue's targets.

    python bench/soak.py                          # 60 s: 30 s at 2x capacity, then 30 s at 10x
    python bench/soak.py --seconds 10 --out soak.md --json soak.json
    python bench/soak.py --capacity 95 --set server.max_concurrency=64   # skip the capacity run

What runs (all on 127.0.0.1, in a temporary folder kept with --keep):
- a redis-server on a free port (the endpoint's cache: `store: redis`);
- `frugal serve` on a generated frugal.yaml: the python runtime running bench/soak_model.py, a
  real digits LogisticRegression plus a fixed device time (--batch-ms + --item-ms a item, the GIL
  released), so capacity is about 100 req/s and 10x is within a Python generator's reach on a
  2-core machine; `batching.timeout_ms` --timeout-ms; the SQLite ledger. --set PATH=VALUE
  changes any field of that file (e.g. `models.0.batching.max_queue=64`);
- capacity: a closed-loop run (--capacity-connections, --capacity-seconds) of requests that miss
  the cache, unless --capacity gives it;
- the load: open loop (Poisson arrivals by default, sent on schedule whether or not earlier
  requests were answered) at each --phases multiple of capacity, --seconds split evenly between
  them. --hot-share of the requests repeat one of --hot-rows digits rows (cache hits once seen);
  the others are unique. Latency counts from each request's scheduled time;
- alongside: --slow-clients connections each sending a --slow-body-bytes body one byte every
  --slow-interval-s (replaced when the server ends one); the redis-server SIGKILLed in the middle
  of phase --redis-restart-phase and started again on its port --redis-down-s later; a prober
  process (bench/soak_probe.py) on GET /v2/health/live and /ready every --probe-interval-ms;
- after the load: the server's RSS (its /proc status, before vs after), SIGTERM, and its ledger
  (rows in `requests`, shadows excluded) against every answer our clients received.

The report (Markdown on stdout and --out, JSON with --json) gives every figure and issue 14's
targets with PASS/FAIL. Exit status: 0 every target met, 1 some target failed or the server did
not start, 2 bad input (an option, --set, no redis-server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import soak_report  # noqa: E402
from soak_run import Run, soak  # noqa: E402
from soak_setup import SoakError, commit, finite, machine, raise_open_files  # noqa: E402


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's docstring as written, and every option's default."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/soak.py",
        description=__doc__,
        formatter_class=_Help,
    )
    a = p.add_argument
    a("--seconds", type=float, default=60.0, help="load duration, split evenly between phases")
    a("--phases", default="2,10", help="multiples of capacity, one phase each, in order")
    a("--capacity", type=float, help="req/s; skips the closed-loop capacity run")
    a("--capacity-seconds", type=float, default=5.0, help="measured part of the capacity run")
    a("--capacity-connections", type=int, default=32, help="closed-loop connections")
    a("--arrivals", choices=["poisson", "fixed"], default="poisson")
    a("--hot-share", type=float, default=0.2, help="share of requests drawn from --hot-rows")
    a("--hot-rows", type=int, default=64, help="distinct repeated rows (the cacheable part)")
    a("--item-ms", type=float, default=10.0, help="the model's device time per item")
    a("--batch-ms", type=float, default=2.0, help="the model's device time per batch")
    a("--max-batch-size", type=int, default=16)
    a("--timeout-ms", type=float, default=1000.0, help="batching.timeout_ms of the model")
    a(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="change a field of the generated frugal.yaml (dotted path, YAML value); repeatable",
    )
    a("--slow-clients", type=int, default=20, help="slow connections open at once (0: none)")
    a("--slow-body-bytes", type=int, default=100_000)
    a("--slow-interval-s", type=float, default=1.0, help="seconds between a slow body's bytes")
    a(
        "--redis-restart-phase",
        type=int,
        help="1-based phase whose middle sees Redis killed and "
        "started again (default: the last; 0: no restart)",
    )
    a("--redis-down-s", type=float, default=1.0, help="seconds Redis stays down")
    a("--redis-server", help="the redis-server binary (default: found on PATH)")
    a("--probe-interval-ms", type=float, default=75.0, help="time between health probes")
    a(
        "--max-connections",
        type=int,
        default=10_000,
        help="open-loop connections open at "
        "most (the open-file limit is raised to fit, up to its hard limit)",
    )
    a(
        "--nice",
        type=int,
        default=-5,
        help="the generator's and prober's nice value once the "
        "server runs (needs root or CAP_SYS_NICE; otherwise left as is): on a busy machine a "
        "client starved of CPU sends late, which a client on another machine would not",
    )
    a("--client-timeout-s", type=float, default=10.0, help="a request's limit on the client")
    a("--seed", type=int, default=0)
    a("--out", type=Path, help="also write the Markdown report here")
    a("--json", type=Path, help="write every figure as JSON here")
    a("--keep", action="store_true", help="keep the temporary folder (config, logs, ledger)")
    args = p.parse_args(argv)
    try:
        args.multipliers = [float(x) for x in args.phases.split(",") if x.strip()]
    except ValueError:
        raise SoakError(
            f"--phases {args.phases!r}: give multiples of capacity, e.g. 2,10"
        ) from None
    checks = [
        ("--seconds", args.seconds > 0),
        ("--phases", bool(args.multipliers) and all(m > 0 for m in args.multipliers)),
        ("--capacity", args.capacity is None or args.capacity > 0),
        ("--capacity-seconds", args.capacity_seconds > 0),
        ("--capacity-connections", args.capacity_connections >= 1),
        ("--hot-share", 0 <= args.hot_share <= 1),
        ("--hot-rows", 1 <= args.hot_rows <= 1797),
        ("--item-ms", args.item_ms >= 0),
        ("--batch-ms", args.batch_ms >= 0),
        ("--max-batch-size", args.max_batch_size >= 1),
        ("--timeout-ms", args.timeout_ms > 0),
        ("--slow-clients", args.slow_clients >= 0),
        ("--slow-body-bytes", args.slow_body_bytes > 200),
        ("--slow-interval-s", args.slow_interval_s > 0),
        ("--redis-down-s", args.redis_down_s >= 0),
        ("--probe-interval-ms", args.probe_interval_ms > 0),
        ("--max-connections", args.max_connections >= 1),
        ("--client-timeout-s", args.client_timeout_s > 0),
    ]
    for name, ok in checks:
        if not ok:
            raise SoakError(f"{name}: out of range (see --help)")
    if args.redis_restart_phase is None:
        args.redis_restart_phase = len(args.multipliers)
    if not 0 <= args.redis_restart_phase <= len(args.multipliers):
        raise SoakError(f"--redis-restart-phase: 0..{len(args.multipliers)} (0: no restart)")
    binary = args.redis_server or shutil.which("redis-server")
    if binary is None or not os.access(binary, os.X_OK):
        raise SoakError(
            f"redis-server not found ({args.redis_server or 'not on PATH'}): the soak restarts a "
            "real Redis. Install it (apt-get install redis-server) or pass --redis-server PATH"
        )
    args.redis_binary = binary
    args.max_connections = raise_open_files(args.max_connections + args.slow_clients + 256) - (
        args.slow_clients + 256
    )
    if args.max_connections < 1:
        raise SoakError("the open-file limit (ulimit -n) leaves no room for connections")
    return args


# --------------------------------------------------------------------------- the report


def build_report(run: Run) -> dict[str, Any]:
    args, plan = run.args, run.plan
    assert plan is not None
    phases = [
        soak_report.phase_figures(answers, m, rate, plan.phase_s)
        for answers, m, rate in zip(run.phases, args.multipliers, plan.rates, strict=True)
    ]
    every = [a for answers in run.phases for a in answers]
    redis: dict[str, Any] | None = None
    if plan.redis_killed is not None and plan.redis_back is not None:
        killed, back = plan.redis_killed, plan.redis_back
        index = args.redis_restart_phase - 1
        down = [a for a in every if killed <= a.scheduled <= back]
        statuses: dict[str, int] = {}
        for a in down:
            key = str(a.status) if a.status else a.error or "closed"
            statuses[key] = statuses.get(key, 0) + 1
        redis = {
            "phase": args.multipliers[index],
            "killed_at_s": killed - plan.phase_starts[index],
            "down_s": back - killed,
            "answers_while_down": dict(sorted(statuses.items())),
        }
    routes = run.probes.get("routes", [])
    start = plan.phase_starts[0] if plan.phase_starts else 0.0
    load_s = plan.drained - start
    report: dict[str, Any] = {
        "started": run.started,
        "machine": machine(),
        "commit": commit(),
        "command": " ".join(["python bench/soak.py", *run.argv]),
        "server": {
            "pid": run.pid,
            "model": f"python runtime, bench/soak_model.py: digits LogisticRegression + "
            f"{args.batch_ms:g} ms a batch + {args.item_ms:g} ms an item of device time",
            "max_batch_size": args.max_batch_size,
            "timeout_ms": args.timeout_ms,
            "overrides": args.overrides,
        },
        "capacity": {"req_per_s": run.capacity, "how": run.capacity_how},
        "hot_share": args.hot_share,
        "hot_rows": args.hot_rows,
        "client_timeout_s": args.client_timeout_s,
        "phases": phases,
        "generator": {
            "arrivals": args.arrivals,
            "nice": run.nice,
            "cpu_s": run.generator_cpu_s,
            "cores": run.generator_cpu_s / load_s if load_s > 0 else math.nan,
            "connections_opened": run.pool.get("opened", 0),
            "connections_peak": run.pool.get("peak", 0),
            "max_connections": args.max_connections,
            "stale_retries": run.pool.get("stale", 0),
            "loop_stalls": len(plan.stalls),
            "loop_stall_max_ms": max((s[1] for s in plan.stalls), default=0.0) * 1000,
            "loop_stalls_busy": sum(loop >= gap / 2 for _, gap, loop, _ in plan.stalls),
            "loop_stalls_other_threads": sum(
                loop < gap / 2 <= every - loop for _, gap, loop, every in plan.stalls
            ),
        },
        "server_cpu_s": run.server_cpu_s,
        "health": soak_report.probe_figures(
            run.probes.get("probes", []), routes, start, plan.drained
        ),
        "slow": {
            "count": args.slow_clients,
            "body_bytes": args.slow_body_bytes,
            "byte_interval_s": args.slow_interval_s,
        },
        "slow_clients": soak_report.slow_figures(run.slow),
        "redis_restart": redis,
        "ledger": soak_report.ledger_figures([*run.warm, *every], run.slow, run.rows),
        "rss_mib": {
            "before": run.rss_before,
            "after": run.rss_after,
            "peak": run.rss_peak,
            "by_phase": run.rss_by_phase,
            "growth": run.rss_after / run.rss_before - 1 if run.rss_before else math.nan,
        },
        "shutdown_s": run.shutdown_s,
    }
    report["targets"] = soak_report.targets(report)
    report["warnings"] = soak_report.warnings(report)
    return report


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from frugal.errors import FrugalError

    argv = list(sys.argv[1:] if argv is None else argv)
    # soft_wrap: a message is one line whatever the terminal's width (logs, grep, tests)
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def say(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

    try:
        args = parse_args(argv)
    except SoakError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    workdir = Path(tempfile.mkdtemp(prefix="frugal-soak-"))
    run = Run(args, argv, dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    try:
        soak(run, workdir, say)
    except SoakError as exc:
        console.print(f"[red]error:[/red] {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
        return 2
    except (FrugalError, RuntimeError, OSError) as exc:
        console.print(f"[red]soak failed:[/red] {exc}\n(kept {workdir}: config, logs, ledger)")
        return 1
    report = build_report(run)
    text = soak_report.markdown(report)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(finite(report), indent=2) + "\n")
    if args.keep:
        say(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    failed = [t["target"] for t in report["targets"] if not t["pass"]]
    say(
        f"targets: {len(report['targets']) - len(failed)} of {len(report['targets'])} met"
        + (f"; failed: {'; '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
