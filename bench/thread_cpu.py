"""Where a server's CPU goes under load, thread by thread: user and kernel µs a request, context
switches a request, and (frugal) the mean batch size, for run.py's servers under wrk.

    python bench/thread_cpu.py --servers bare,lean,frugal,frugal-onnx --connections 16,64
    python bench/thread_cpu.py --servers frugal --pin 0      # the server on core 0 (taskset)

Why: run.py gives a server's whole CPU a request; splitting it by thread tells the event loop's
share from the model's slot thread and the ledger writer's, and the kernel's from Python's.
Thread names come from ``py-spy dump`` (Python 3.11 does not name its OS threads); figures from
``/proc/<pid>/task/<tid>/{stat,status}`` read around a measured wrk run, after a 2 s warm-up.
Only the server's own process is read: with ``frugal@N`` that is the supervisor, not its
workers. Prints one JSON line per server and connection count.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import run  # noqa: E402

BATCH_SERIES = re.compile(r"^frugal_batch_size_(sum|count)\{[^}]*\} (\S+)$", re.M)


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by OS thread id, from ``py-spy dump`` (empty if py-spy is missing)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    try:
        dump = subprocess.run(
            [spy, "dump", "-p", str(pid)], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(m[1]): m[2] for m in re.finditer(r'Thread (\d+) \([^)]*\): "([^"]+)"', dump)}


def thread_counters(pid: int) -> dict[int, tuple[float, float, int, int]]:
    """(user s, kernel s, voluntary, involuntary context switches) of each thread of ``pid``."""
    out: dict[int, tuple[float, float, int, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        switches = dict(re.findall(r"^(\w*voluntary_ctxt_switches):\s+(\d+)", status, re.M))
        out[int(tid)] = (
            int(stat[11]) / loadgen.CLK_TCK,
            int(stat[12]) / loadgen.CLK_TCK,
            int(switches.get("voluntary_ctxt_switches", 0)),
            int(switches.get("nonvoluntary_ctxt_switches", 0)),
        )
    return out


def batch_totals(metrics_url: str) -> tuple[float, float]:
    """(items, batches) so far on a frugal server's /metrics; (0, 0) elsewhere."""
    import httpx

    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return 0.0, 0.0
    totals = {"sum": 0.0, "count": 0.0}
    for kind, value in BATCH_SERIES.findall(text):
        totals[kind] += float(value)
    return totals["sum"], totals["count"]


def measure(server: loadgen.Server, url: str, bodies: Path, conns: int, seconds: float,
            wrk_pin: str | None) -> dict[str, Any]:  # fmt: skip
    loadgen.run_wrk(url, bodies, conns, 2)  # warm-up
    names = thread_names(server.pid)
    metrics = url.split("/v1/", 1)[0] + "/metrics" if "/v1/" in url else None
    items0, batches0 = batch_totals(metrics) if metrics else (0.0, 0.0)
    before = thread_counters(server.pid)
    wrapper = ("taskset", "-c", wrk_pin) if wrk_pin is not None else ()
    result = loadgen.run_wrk(url, bodies, conns, seconds, wrapper=wrapper)
    after = thread_counters(server.pid)
    items1, batches1 = batch_totals(metrics) if metrics else (0.0, 0.0)
    n = max(1, result["requests"])
    threads: dict[str, dict[str, float]] = {}
    for tid, (user, kernel, vol, invol) in after.items():
        u0, k0, v0, i0 = before.get(tid, (0.0, 0.0, 0, 0))
        if user + kernel - u0 - k0 <= 0:
            continue
        row = threads.setdefault(
            names.get(tid, "other"),
            {"user_us": 0.0, "kernel_us": 0.0, "switches": 0.0, "preempted": 0.0},
        )
        row["user_us"] += 1e6 * (user - u0) / n
        row["kernel_us"] += 1e6 * (kernel - k0) / n
        row["switches"] += (vol - v0) / n
        row["preempted"] += (invol - i0) / n
    total = sum(t["user_us"] + t["kernel_us"] for t in threads.values())
    return {
        "connections": conns, "req_per_s": round(result["rps"]), "cpu_us_per_req": round(total, 1),
        "mean_batch": round((items1 - items0) / (batches1 - batches0), 2)
        if batches1 > batches0 else None,
        "threads": {name: {k: round(v, 2) for k, v in row.items()}
                    for name, row in sorted(threads.items(), key=lambda kv: -sum(kv[1].values()))},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--servers", default="frugal", help=f"of {', '.join(run.SERVERS)}, frugal@N")
    p.add_argument("--workload", default="w1", choices=run.WORKLOADS)
    p.add_argument("--connections", default="16,64")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--pin", help="run the server under `taskset -c PIN` (e.g. 0)")
    p.add_argument("--wrk-pin", help="run wrk under `taskset -c WRK_PIN` (e.g. 1)")
    p.add_argument("--base-src", help="for server `base`: the other checkout's code (run.py)")
    args = p.parse_args(argv)
    args.w2_backend, args.w2_threads = "onnx", 1  # run.server_for's W2 options: run.py's defaults
    run.prepare([args.workload], args)
    with tempfile.TemporaryDirectory(prefix="frugal-thread-cpu-") as tmp:
        bodies = loadgen.write_bodies(loadgen.make_bodies(args.workload), Path(tmp) / "bodies")
        for name in args.servers.split(","):
            server, url = run.server_for(name, args.workload, loadgen.free_port(), Path(tmp), args)
            if args.pin is not None:
                server.cmd = ["taskset", "-c", args.pin, *server.cmd]
            server.start()
            try:
                for conns in (int(c) for c in args.connections.split(",")):
                    out = measure(server, url, bodies, conns, args.seconds, args.wrk_pin)
                    pins = {"pin": args.pin, "wrk_pin": args.wrk_pin}
                    print(json.dumps({"server": name, **pins, **out}), flush=True)
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
