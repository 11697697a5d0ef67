"""Does `frugal simulate` predict a real server? Simulate a trace, replay it, compare.

    python bench/simulate_validation.py                       # profile, then both traces
    python bench/simulate_validation.py --profile P.json      # reuse an end-to-end profile

1. Profile: `frugal profile --http --server-workers W` of bench's W1 model (digits
   LogisticRegression, bench/models.py) on this machine, once per worker count W of
   ``--workers``: the model's batch latencies, its load time, the server's own CPU per request
   and its open-loop levels. A replica of the simulation is one worker; the rows with W workers
   read the profile taken with W, since W workers on one machine share its cores (and the load
   generator's) the way W replicas on W machines do not.
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
   With ``--repeats N`` each real replay runs N times: the measured figure is the median of the
   N runs (their range is in the table), since one 60 s run's p99 on a shared machine moves by
   more than the target from one run to the next.

The load generator shares this machine's cores with the server (and, on a shared box, with
whatever else runs): its CPU is printed, and noise lands mostly on p99.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import models  # noqa: E402
import numpy as np  # noqa: E402

from frugal.accounting import build_report  # noqa: E402
from frugal.optimize import open_loop  # noqa: E402
from frugal.optimize.loadgen import run_async  # noqa: E402
from frugal.optimize.open_loop import Replay  # noqa: E402
from frugal.optimize.server_process import running_server  # noqa: E402
from frugal.scale.simulate_run import Request, prepare, run  # noqa: E402
from frugal.scale.traces import Trace, from_rows, generate, write_trace  # noqa: E402

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


def profile(folder: Path, out: Path, seconds: float, rates: str, workers: int) -> Path:
    config = write_config(folder, f"profile-w{workers}")
    command = [sys.executable, "-m", "frugal", "profile", str(config), "--http",
               "--server-workers", str(workers), "--concurrency", "1,2,4,8,16,32", "--seconds",
               str(seconds), "--batch-sizes", "1,2,4,8,16,32", "--rates", rates,
               "--out", str(out)]  # fmt: skip
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)
    return out


def replay(url: str, trace: Trace, bodies: list[bytes], pid: int) -> tuple[dict[str, Any], Replay]:
    """Open loop, with the profile's own open-loop client (frugal/optimize/open_loop.py):
    request i at t0 + t_s[i] whatever happened before; latency from that scheduled time, and
    from when it was really written (the client's own delay on this machine left out)."""
    r = run_async(open_loop.replay(url, bodies, trace.t_s, server_pid=pid))
    latency, from_send, lag = r.latency_ms(), r.from_send_ms(), r.send_lag_ms()
    errors: dict[str, int] = {}
    for status in r.statuses[~r.answered].tolist():
        errors[str(status)] = errors.get(str(status), 0) + 1
    return {
        "requests": len(trace),
        "answered": int(latency.size),
        "errors": errors,
        "wall_s": r.seconds,
        "throughput_per_s": latency.size / r.seconds,
        "p50_ms": float(np.percentile(latency, 50)),
        "p99_ms": float(np.percentile(latency, 99)),
        "max_send_lag_ms": float(lag.max()),
        "p50_send_lag_ms": float(np.percentile(lag, 50)),
        "p99_send_lag_ms": float(np.percentile(lag, 99)),
        "p50_ms_from_send": float(np.percentile(from_send, 50)),
        "p99_ms_from_send": float(np.percentile(from_send, 99)),
        "connections": r.connections,
        "server_cpu_s": r.server_cpu_s,
        "client_cpu_s": r.client_cpu_s,
    }, r


def ledger_latency(ledger: Path, since: float, until: float) -> dict[str, float]:
    """The server's own view: the ledger's per-request latency_ms (from the handler's start to
    its answer: no socket, no HTTP parsing before the route, no client), queue_ms, compute_ms."""
    with sqlite3.connect(ledger) as db:
        rows = np.asarray(db.execute(
            "SELECT latency_ms, queue_ms, compute_ms FROM requests WHERE ts >= ? AND ts <= ? "
            "AND status = 200", (since, until + 5)).fetchall(), dtype=np.float64)  # fmt: skip
    if not rows.size:
        return {}
    out = {}
    for k, name in enumerate(("latency", "queue", "compute")):
        out[f"{name}_p50_ms"] = float(np.percentile(rows[:, k], 50))
        out[f"{name}_p99_ms"] = float(np.percentile(rows[:, k], 99))
    return out


def measure(folder: Path, name: str, trace: Trace, workers: int) -> tuple[dict[str, Any], Replay]:
    config = write_config(folder, name)
    bodies = [b.encode() for b in loadgen.make_bodies("w1")]
    with running_server(config, workers=workers) as (url, pid):
        load_before = os.getloadavg()[0]
        result, r = replay(f"{url}/v1/endpoints/digits/predict", trace, bodies, pid)
        # The machine's 1-minute load average before and after: on a shared box, other jobs
        # take CPU from the server, and the simulation assumes a replica owns its core.
        result["load_average"] = [load_before, os.getloadavg()[0]]
    report = build_report(folder / f"{name}-ledger.db", since=r.since, until=r.until + 5)
    result["allocated_usd"] = report.allocated_usd
    result["billed_usd"] = report.billed_usd
    result["ledger_requests"] = report.total.requests
    result["ledger"] = ledger_latency(folder / f"{name}-ledger.db", r.since, r.until)
    return result, r


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
        # arrivals whose replica saw more than the profile's highest open-loop level
        "past_curve": r.past_curve,
        "peak_rate_per_replica_s": r.peak_rate_per_s,
    }


def as_sent(r: Replay) -> Trace:
    """The replay's arrivals as the server got them: each request at the time it was written."""
    sent = np.sort(r.sent_s[~np.isnan(r.sent_s)])
    return from_rows(((float(t), "digits", "") for t in sent - sent[0]), source="as sent")


def profile_paths(value: str) -> dict[int, Path]:
    """``P.json`` (key 0: every worker count) or ``1=P1.json,2=P2.json``."""
    if "=" not in value:
        return {0: Path(value)}
    return {int(w): Path(p) for w, _, p in (part.partition("=") for part in value.split(","))}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each number the median of the runs' (the first run's for anything else); with one run,
    that run. ``*_range`` keeps each number's lowest and highest."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in runs]
            out[key] = float(np.median(values))
            out[f"{key}_range"] = [min(values), max(values)]
    return out


def error(simulated: float, measured: float) -> float:
    return (simulated - measured) / measured if measured else math.nan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=profile_paths,
                        help="end-to-end profiles to reuse: P.json for every worker count, or "
                        "1=P1.json,2=P2.json (default: take one per worker count)")
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="50,100,200,400,700",
                        help="the profile's open-loop rates (frugal profile --rates)")
    parser.add_argument("--shape", default="steady")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--check-shape", default="diurnal")
    parser.add_argument("--check-rate", type=float, default=450.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=1,
                        help="real replays per row; the measured figures are their medians")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    worker_counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="frugal-simval-") as tmp:
        folder = Path(tmp)
        given = args.profile or {}
        profiles = {
            w: given.get(w) or given.get(0) or profile(
                folder, RESULTS / f"simulate-profile-{stamp}-w{w}.json", args.profile_seconds,
                args.rates, w)
            for w in worker_counts
        }  # fmt: skip
        cases = [("tuned", args.shape, args.rate), ("check", args.check_shape, args.check_rate)]
        for role, shape, rate in cases:
            trace = generate(shape, rate=rate, duration_s=args.duration, seed=args.seed,
                             endpoints=[("digits", 1.0)])  # fmt: skip
            trace_path = folder / f"{shape}-{rate:g}.csv"
            write_trace(trace, trace_path)
            for workers in worker_counts:
                name = f"{shape}-{rate:g}-w{workers}"
                print(f"{name}: simulating, then replaying {len(trace):,} requests "
                      f"x {args.repeats}", flush=True)  # fmt: skip
                sim_config = write_config(folder, "sim")
                sim = simulate(trace_path, profiles[workers], sim_config, workers)
                runs, sents = [], []
                for k in range(args.repeats):
                    real, replayed = measure(folder, f"{name}-r{k}", trace, workers)
                    # The same simulation on the arrivals as the server got them (when each
                    # request was written): compared with latency from send, the load
                    # generator's own delay on this machine is out of both sides.
                    sent_path = folder / f"{name}-r{k}-as-sent.csv"
                    write_trace(as_sent(replayed), sent_path)
                    sent = simulate(sent_path, profiles[workers], sim_config, workers)
                    sent["p50_ms_from_send"] = sent["p50_ms"]
                    sent["p99_ms_from_send"] = sent["p99_ms"]
                    runs.append(real)
                    sents.append(sent)
                real, sent = median_run(runs), median_run(sents)
                keys = ("p50_ms", "p99_ms", "throughput_per_s", "allocated_usd")
                errors = {k: error(sim[k], real[k]) for k in keys}
                errors_sent = {k: error(sent[k], real[k]) for k in
                               ("p50_ms_from_send", "p99_ms_from_send")}  # fmt: skip
                rows.append({"trace": f"{shape} {rate:g} req/s", "role": role,
                             "workers": workers, "profile": str(profiles[workers]),
                             "simulated": sim, "measured": real, "measured_runs": runs,
                             "error": errors, "simulated_as_sent": sent,
                             "simulated_as_sent_runs": sents,
                             "error_as_sent": errors_sent})  # fmt: skip
                print(json.dumps({k: rows[-1][k] for k in ("trace", "workers", "error",
                                                           "error_as_sent")}, indent=1),
                      flush=True)  # fmt: skip
    out = RESULTS / f"simulate-validation-{stamp}"
    meta = {"profiles": {str(w): str(p) for w, p in profiles.items()},
            "duration_s": args.duration, "seed": args.seed, "repeats": args.repeats,
            "machine": loadgen_machine(), "target": TARGET, "rows": rows}  # fmt: skip
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(meta))
    print(markdown(meta))
    return 0


def profiles_of(meta: dict[str, Any]) -> dict[str, str]:
    """Worker count -> profile; results written before per-worker profiles had one for all."""
    return meta.get("profiles") or {"all": meta["profile"]}


def loadgen_machine() -> str:
    from frugal.optimize.profile import cpu_model

    return f"{cpu_model()}, {os.cpu_count()} cores"


def _cell(row: dict[str, Any], key: str, fmt: str, side: str = "") -> str:
    s, m = row[f"simulated{side}"][key], row["measured"][key]
    e = row[f"error{side}"][key]
    mark = "" if abs(e) <= TARGET else " **miss**"
    return f"{s:{fmt}} / {m:{fmt}} ({e:+.0%}){mark}"


def markdown(meta: dict[str, Any]) -> str:
    lines = [
        f"# simulate vs a real `frugal serve` ({meta['machine']})",
        "",
        "profiles (one per worker count): "
        + ", ".join(f"{w} worker(s) `{p}`" for w, p in profiles_of(meta).items())
        + f"; traces of {meta['duration_s']:g} s, seed {meta['seed']}; simulated / measured "
        f"(error); target within 15%; measured: the median of {meta.get('repeats', 1)} "
        "replay(s) a row, the p99s' range in the last column.",
        "",
        "p50/p99 from send: the simulation of the arrivals as the server got them (each request "
        "at the time the load generator wrote it) against latency from that time: the load "
        "generator's own delay on this machine is out of both. p50/p99 from schedule: the "
        "trace as generated against latency from each request's scheduled time (that delay in).",
        "",
        "| trace | role | workers | p50 ms from send | p99 ms from send | p50 ms from schedule "
        "| p99 ms from schedule | req/s | allocated $ | billed $ (sim / ledger) | load avg "
        "| measured p99 from send, range |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in meta["rows"]:
        s, m = row["simulated"], row["measured"]
        sent = [_cell(row, k, ".2f", "_as_sent") if "error_as_sent" in row else "-"
                for k in ("p50_ms_from_send", "p99_ms_from_send")]  # fmt: skip
        low_high = m.get("p99_ms_from_send_range")
        spread = f"{low_high[0]:.2f}-{low_high[1]:.2f}" if low_high else "-"
        lines.append(
            f"| {row['trace']} | {row['role']} | {row['workers']} | {sent[0]} | {sent[1]} | "
            f"{_cell(row, 'p50_ms', '.2f')} | {_cell(row, 'p99_ms', '.2f')} | "
            f"{_cell(row, 'throughput_per_s', '.1f')} | {_cell(row, 'allocated_usd', '.2e')} | "
            f"{s['billed_usd']:.2e} / {m['billed_usd']:.2e} | "
            f"{m['load_average'][0]:.1f}-{m['load_average'][1]:.1f} | {spread} |"
        )
    lines += [
        "",
        "Where the measured time goes (ms, p50 / p99): the client's send lag; latency from send;"
        " the ledger's latency (server side, from the handler's start), its queue and compute.",
        "",
        "| trace | workers | send lag | from send | ledger latency | ledger queue "
        "| ledger compute |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in meta["rows"]:
        m = row["measured"]
        led = m.get("ledger") or {}

        def pair(a: Any, b: Any) -> str:
            return f"{a:.2f} / {b:.2f}" if a is not None and b is not None else "-"

        lines.append(
            f"| {row['trace']} | {row['workers']} | "
            f"{pair(m.get('p50_send_lag_ms'), m.get('p99_send_lag_ms'))} | "
            f"{pair(m['p50_ms_from_send'], m['p99_ms_from_send'])} | "
            f"{pair(led.get('latency_p50_ms'), led.get('latency_p99_ms'))} | "
            f"{pair(led.get('queue_p50_ms'), led.get('queue_p99_ms'))} | "
            f"{pair(led.get('compute_p50_ms'), led.get('compute_p99_ms'))} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
