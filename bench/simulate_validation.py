"""Does `frugal simulate` predict a real server? Simulate a trace, replay it, compare.

    python bench/simulate_validation.py                       # profile, then both traces
    python bench/simulate_validation.py --profile P.json      # reuse an end-to-end profile

1. Profile: `frugal profile --http --server-workers 1` of bench's W1 model (digits
   LogisticRegression, bench/models.py) on this machine: the model's batch latencies, its load
   time and the server's own CPU per request. A replica of the simulation is one worker.
2. For each trace (the first, ``--shape/--rate``, is the one the simulator's defaults were
   looked at on; the second, ``--check-shape/--check-rate``, was never looked at before this
   run) and each of ``--workers 1`` and ``--workers 2``:
   - simulate it: ``--fixed W`` replicas of 1 vCPU of c7i.large, the config's batching;
   - replay it against a real `frugal serve --workers W` open loop: request i is sent at its
     trace time whatever happened before (no coordinated omission), latency counted from that
     time; the server's ledger gives the $ of the window.
3. Compare p50, p99, throughput and $ (allocated: model + server work, the part the simulation
   predicts; billed too, with its definition) and write bench/results/simulate-validation-*.md
   and .json. Target: each figure within 15%; a miss is reported, with the run's numbers.

The load generator shares this machine's cores with the server (and, on a shared box, with
whatever else runs): its CPU is printed, and noise lands mostly on p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import models  # noqa: E402
import numpy as np  # noqa: E402

from frugal.accounting import build_report  # noqa: E402
from frugal.optimize.loadgen import cpu_seconds  # noqa: E402
from frugal.optimize.server_process import running_server  # noqa: E402
from frugal.scale.simulate_run import Request, prepare, run  # noqa: E402
from frugal.scale.traces import Trace, generate, write_trace  # noqa: E402

RESULTS = BENCH / "results"
TARGET = 0.15

CONFIG = """\
instance: {{type: c7i.large}}
models:
  - name: digits
    version: "1"
    runtime: sklearn
    path: {path}
    sha256: {sha256}
    inputs: [{{name: pixels, datatype: FP32, shape: [-1, 64]}}]
    batching: {{max_batch_size: 32, max_wait_ms: 2, max_queue: 4096, timeout_ms: 10000}}
endpoints:
  - {{name: digits, model: digits}}
ledger: {{path: {ledger}}}
# Loop-lag shedding off: on a shared 2-core box other jobs' CPU use shows up as loop lag, and
# the 503s it would answer are not what the simulation is checked on (queueing and service).
server: {{max_loop_lag_ms: null}}
"""


def write_config(folder: Path, name: str) -> Path:
    """The W1 model with its ledger in ``folder`` (a fresh ledger per run: its window is ours)."""
    if not models.W1_PATH.exists():
        models.build_w1()
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(path=models.W1_PATH, sha256=models.sha256_file(models.W1_PATH),
                                  ledger=folder / f"{name}-ledger.db"))  # fmt: skip
    return path


def profile(folder: Path, out: Path, seconds: float) -> Path:
    config = write_config(folder, "profile")
    command = [sys.executable, "-m", "frugal", "profile", str(config), "--http",
               "--server-workers", "1", "--concurrency", "1,2,4,8,16,32", "--seconds",
               str(seconds), "--batch-sizes", "1,2,4,8,16,32", "--out", str(out)]  # fmt: skip
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return out


async def replay(url: str, trace: Trace, bodies: list[str]) -> dict[str, Any]:
    """Open loop: request i at t0 + t_s[i]; latency from that scheduled time."""
    http = loadgen._Http(url, max_connections=512)
    requests = [http.encode(b) for b in bodies]
    latency = np.full(len(trace), np.nan)
    from_send = np.full(len(trace), np.nan)  # from when the request was really written
    errors: dict[str, int] = {}

    async def one(i: int, at: float) -> None:
        sent = time.perf_counter()
        for attempt in range(3):
            try:
                status = await asyncio.wait_for(http.post(requests[i % len(requests)]), 30)
                break
            except (IndexError, ConnectionResetError, asyncio.IncompleteReadError) as e:
                # A pooled keep-alive connection the server closed while idle (uvicorn's
                # keep-alive timeout, during a trace's quiet start) reads as an empty status
                # line: send again on another connection, as an HTTP client library would.
                if attempt == 2:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    return
            except (TimeoutError, OSError, ValueError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                return
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
            return
        done = time.perf_counter()
        latency[i], from_send[i] = done - at, done - sent

    tasks = []
    t0 = time.perf_counter() + 0.1
    max_lag = 0.0
    for i, offset in enumerate(trace.t_s):
        at = t0 + float(offset)
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    http.close()
    answered = latency[~np.isnan(latency)]
    return {
        "requests": len(trace),
        "answered": int(answered.size),
        "errors": errors,
        "wall_s": wall,
        "throughput_per_s": answered.size / wall,
        "p50_ms": float(np.percentile(answered, 50)) * 1000,
        "p99_ms": float(np.percentile(answered, 99)) * 1000,
        "max_send_lag_ms": max_lag * 1000,
        # The client's share: asyncio wakes a sleeper on epoll's millisecond ticks (and later
        # when the machine is busy), so a request is written up to ~1 ms after its time.
        "p50_ms_from_send": float(np.nanpercentile(from_send, 50)) * 1000,
        "p99_ms_from_send": float(np.nanpercentile(from_send, 99)) * 1000,
    }


def measure(folder: Path, name: str, trace: Trace, workers: int) -> dict[str, Any]:
    config = write_config(folder, name)
    bodies = loadgen.make_bodies("w1")
    with running_server(config, workers=workers) as (url, pid):
        load_before = os.getloadavg()[0]
        cpu0, client0 = cpu_seconds(pid), time.process_time()
        since = time.time()
        result = asyncio.run(replay(f"{url}/v1/endpoints/digits/predict", trace, bodies))
        until = time.time()
        result["server_cpu_s"] = cpu_seconds(pid) - cpu0
        result["client_cpu_s"] = time.process_time() - client0
        # The machine's 1-minute load average before and after: on a shared box, other jobs
        # take CPU from the server, and the simulation assumes a replica owns its core.
        result["load_average"] = [load_before, os.getloadavg()[0]]
    report = build_report(folder / f"{name}-ledger.db", since=since, until=until)
    result["allocated_usd"] = report.allocated_usd
    result["billed_usd"] = report.billed_usd
    result["ledger_requests"] = report.total.requests
    return result


def simulate(trace_path: Path, profile_path: Path, config: Path, workers: int) -> dict[str, Any]:
    prepared = prepare(Request(trace=trace_path, profile=profile_path, fixed=(workers,),
                               instance="c7i.large", replica_vcpus=1.0, slo_ms=100,
                               config=config))  # fmt: skip
    (r,) = run(prepared)
    return {
        "requests": r.requests,
        "answered": r.answered,
        "throughput_per_s": r.answered / r.duration_s,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "allocated_usd": r.allocated_usd,
        "billed_usd": r.cost_usd,
        "utilization": r.utilization,
        "dropped": r.dropped,
    }


def error(simulated: float, measured: float) -> float:
    return (simulated - measured) / measured if measured else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, help="an end-to-end profile (default: take one)")
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--shape", default="steady")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--check-shape", default="diurnal")
    parser.add_argument("--check-rate", type=float, default=450.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="frugal-simval-") as tmp:
        folder = Path(tmp)
        profile_path = args.profile or profile(folder, RESULTS / f"simulate-profile-{stamp}.json",
                                               args.profile_seconds)  # fmt: skip
        cases = [("tuned", args.shape, args.rate), ("check", args.check_shape, args.check_rate)]
        for role, shape, rate in cases:
            trace = generate(shape, rate=rate, duration_s=args.duration, seed=args.seed,
                             endpoints=[("digits", 1.0)])  # fmt: skip
            trace_path = folder / f"{shape}-{rate:g}.csv"
            write_trace(trace, trace_path)
            for workers in (int(w) for w in args.workers.split(",")):
                name = f"{shape}-{rate:g}-w{workers}"
                print(f"{name}: simulating, then replaying {len(trace):,} requests", flush=True)
                sim = simulate(trace_path, profile_path, write_config(folder, "sim"), workers)
                real = measure(folder, name, trace, workers)
                errors = {k: error(sim[k], real[k]) for k in
                          ("p50_ms", "p99_ms", "throughput_per_s", "allocated_usd")}  # fmt: skip
                rows.append({"trace": f"{shape} {rate:g} req/s", "role": role,
                             "workers": workers, "simulated": sim, "measured": real,
                             "error": errors})  # fmt: skip
                print(json.dumps(rows[-1], indent=1), flush=True)
    out = RESULTS / f"simulate-validation-{stamp}"
    meta = {"profile": str(profile_path), "duration_s": args.duration, "seed": args.seed,
            "machine": loadgen_machine(), "target": TARGET, "rows": rows}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(meta))
    print(markdown(meta))
    return 0


def loadgen_machine() -> str:
    from frugal.optimize.profile import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores"


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    s, m, e = row["simulated"][key], row["measured"][key], row["error"][key]
    mark = "" if abs(e) <= TARGET else " **miss**"
    return f"{s:{fmt}} / {m:{fmt}} ({e:+.0%}){mark}"


def markdown(meta: dict[str, Any]) -> str:
    lines = [
        f"# simulate vs a real `frugal serve` ({meta['machine']})",
        "",
        f"profile: `{meta['profile']}`; traces of {meta['duration_s']:g} s, seed {meta['seed']};"
        " simulated / measured (error); target within 15%",
        "",
        "| trace | role | workers | p50 ms | p99 ms | req/s | allocated $ | billed $ "
        "(sim / ledger) | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in meta["rows"]:
        s, m = row["simulated"], row["measured"]
        lines.append(
            f"| {row['trace']} | {row['role']} | {row['workers']} | {_cell(row, 'p50_ms', '.2f')}"
            f" | {_cell(row, 'p99_ms', '.2f')} | {_cell(row, 'throughput_per_s', '.1f')} | "
            f"{_cell(row, 'allocated_usd', '.2e')} | {s['billed_usd']:.2e} / "
            f"{m['billed_usd']:.2e} | {m['load_average'][0]:.1f}-{m['load_average'][1]:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
