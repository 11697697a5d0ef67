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
import gc
import json
import math
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import soak_report  # noqa: E402
from soak_client import Answer, HttpPool, RedisProcess, SlowOutcome  # noqa: E402
from soak_load import PREDICT_PATH, Bodies, LoadPlan, loop_runner, run_capacity, run_load  # noqa: E402


class SoakError(Exception):
    """Bad input: the message says what to change (exit 2)."""


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


def set_nice(value: int) -> int | None:
    """Sets this thread's nice value, and its session's autogroup's where Linux groups sessions
    (sched_autogroup: nice acts only within a session, and `frugal serve`, started with a session
    of its own, keeps its share); threads and processes started later inherit it. Returns it, or
    None when the system refuses (no privilege)."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        return None
    try:
        Path("/proc/self/autogroup").write_text(str(value))
    except OSError:
        pass  # no autogroups (or not allowed): the thread's nice is all there is
    return value


def raise_open_files(wanted: int) -> int:
    """Raises this process's open-file limit toward ``wanted`` (the server, started from here,
    inherits it, as a service's LimitNOFILE would give it); returns the limit now in force.

    Open loop means one connection per request in flight: at 10x an overloaded server holds
    thousands, and the usual 1,024 would turn the generator's own limit into connection errors.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


# --------------------------------------------------------------------------- the server's config


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """``models.0.batching.max_queue=64``: set that field of the config mapping (YAML value)."""
    import yaml

    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise SoakError(f"--set {assignment!r}: write PATH=VALUE, e.g. server.max_concurrency=64")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SoakError(f"--set {path}: the value is not YAML: {exc}") from None
    node: Any = data
    parts = path.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SoakError(
                    f"--set {path}: {'.'.join(parts[:i]) or 'the root'} is a list "
                    f"of {len(node)}; {part!r} is not an index in it"
                )
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise SoakError(f"--set {path}: {'.'.join(parts[:i])} is a value, not a mapping")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def write_config(args: argparse.Namespace, workdir: Path, redis_url: str) -> Path:
    """frugal.yaml for the server under test, checked by frugal's own loader (bad --set: exit 2)."""
    import yaml

    from frugal.config import load_config
    from frugal.errors import FrugalError
    from frugal.runtimes import sha256_of

    model_file = BENCH / "soak_model.py"
    data: dict[str, Any] = {
        "instance": {"type": "c7i.large"},
        "models": [
            {
                "name": "digits",
                "version": "1",
                "runtime": "python",
                "factory": "soak_model:make",
                "path": str(model_file),
                "sha256": sha256_of(model_file),
                "options": {"item_ms": args.item_ms, "batch_ms": args.batch_ms},
                "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
                "batching": {"max_batch_size": args.max_batch_size, "timeout_ms": args.timeout_ms},
            }
        ],
        "endpoints": [
            {
                "name": "digits",
                "model": "digits",
                "cache": {"store": "redis", "redis_url": redis_url, "ttl_s": 600},
            }
        ],
        "ledger": {"path": "ledger.db"},
    }
    for assignment in args.overrides:
        apply_override(data, assignment)
    path = workdir / "frugal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        config = load_config(path)
    except FrugalError as exc:
        raise SoakError(f"the server's config (after --set) is invalid: {exc}") from None
    args.timeout_ms = config.models[0].batching.timeout_ms
    args.max_batch_size = config.models[0].batching.max_batch_size
    return path


# --------------------------------------------------------------------------- measuring


def rss_mib(pid: int) -> float:
    """VmRSS of the server's process tree, from /proc/<pid>/status (and its children's)."""
    import loadgen

    return float(loadgen.memory_mib(pid)["rss_mib"])


def ledger_rows(path: Path) -> list[tuple[str, int]]:
    """(request_id, status) of every request row in the stopped server's ledger; shadow copies
    are no answers."""
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return db.execute("SELECT request_id, status FROM requests WHERE shadow = 0").fetchall()
        except sqlite3.OperationalError:  # no requests table: the server never opened it
            return []


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()}-core {cpu}, {platform.system()} {platform.release()}, no GPU"


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def finite(value: Any) -> Any:
    """The report with nan/inf as null, so that --json writes standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """What a soak collected, before it becomes the report."""

    args: argparse.Namespace
    argv: list[str]
    started: str
    pid: int = 0
    capacity: float = 0.0
    capacity_how: str = ""
    warm: list[Answer] = field(default_factory=list)
    phases: list[list[Answer]] = field(default_factory=list)
    slow: list[SlowOutcome] = field(default_factory=list)
    plan: LoadPlan | None = None
    probes: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, int] = field(default_factory=dict)
    generator_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    rss_before: float = 0.0
    rss_after: float = 0.0
    rss_peak: float = 0.0
    rss_by_phase: list[float] = field(default_factory=list)  # at the end of each phase's schedule
    shutdown_s: float = math.nan
    nice: int | None = None  # the generator's, when it could be set
    rows: list[tuple[str, int]] = field(default_factory=list)


def soak(run: Run, workdir: Path, say: Callable[[str], None]) -> None:
    """Redis, the server, capacity, the load, shutdown, the ledger: fills ``run``."""
    import loadgen

    from frugal.optimize import free_port, running_server

    args = run.args
    redis = RedisProcess(args.redis_binary, free_port(), workdir)
    config = write_config(args, workdir, redis.url)  # before anything starts: bad --set, exit 2
    redis.start()
    redis_pid = redis.process.pid if redis.process else "?"
    say(f"redis-server on 127.0.0.1:{redis.port} (pid {redis_pid})")
    try:
        with running_server(config, log_path=workdir / "serve.log") as (url, pid):
            run.pid = pid
            port = int(url.rsplit(":", 1)[1])
            say(f"frugal serve ready at {url} (pid {pid}); config {config}")
            run.nice = set_nice(args.nice)  # after the server started: it keeps its own
            bodies = Bodies(run.args.hot_share, run.args.hot_rows, run.args.seed)
            _capacity(run, bodies, port, say)
            run.rss_before = rss_mib(pid)
            cpu0, usage0 = loadgen.cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
            probes_file = workdir / "probes.json"
            prober = subprocess.Popen(
                [
                    sys.executable,
                    str(BENCH / "soak_probe.py"),
                    url,
                    "--interval-ms",
                    str(args.probe_interval_ms),
                    "--out",
                    str(probes_file),
                ],
                stdin=subprocess.DEVNULL,
            )
            try:
                with loadgen.RssSampler(pid, 0.5) as sampler:
                    _load(run, bodies, redis, port, say)
            finally:
                prober.send_signal(signal.SIGTERM)
                try:
                    prober.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    prober.kill()
                    prober.wait()
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            run.generator_cpu_s = (usage1.ru_utime + usage1.ru_stime) - (
                usage0.ru_utime + usage0.ru_stime
            )
            run.server_cpu_s = loadgen.cpu_seconds(pid) - cpu0
            run.rss_after = rss_mib(pid)
            run.rss_peak = max(sampler.peak_mib, run.rss_after, run.rss_before)
            if probes_file.exists():
                run.probes = json.loads(probes_file.read_text())
            say("stopping the server (SIGTERM)")
            stopping = time.monotonic()
        run.shutdown_s = time.monotonic() - stopping
    finally:
        redis.stop()
    run.rows = ledger_rows(workdir / "ledger.db")
    say(f"server exited {run.shutdown_s:.2f} s after SIGTERM; ledger rows: {len(run.rows):,}")


def _capacity(run: Run, bodies: Bodies, port: int, say: Callable[[str], None]) -> None:
    """The closed-loop capacity run (or just a 1 s warm-up when --capacity is given)."""
    args = run.args
    pool = HttpPool("127.0.0.1", port, PREDICT_PATH, args.max_connections)
    measured_s = 0.0 if args.capacity else args.capacity_seconds

    async def go() -> float:
        try:
            return await run_capacity(
                pool,
                bodies,
                args.capacity_connections,
                1.0,
                measured_s,
                args.client_timeout_s,
                run.warm,
            )
        finally:
            pool.close()

    measured = loop_runner()(go())
    if args.capacity:
        run.capacity, run.capacity_how = args.capacity, "given with --capacity"
    else:
        run.capacity = measured
        run.capacity_how = (
            f"measured: closed loop, {args.capacity_connections} connections, "
            f"{measured_s:g} s after 1 s of warm-up, cache misses only"
        )
    if run.capacity <= 0:
        raise RuntimeError(
            "capacity measured as 0 req/s: no request was answered 200; see the server's log"
        )
    failed = sum(a.status != 200 for a in run.warm)
    say(
        f"capacity {run.capacity:,.1f} req/s ({run.capacity_how}); "
        f"{failed} of {len(run.warm)} warm-up/capacity requests not 200"
    )


def _load(
    run: Run, bodies: Bodies, redis: RedisProcess, port: int, say: Callable[[str], None]
) -> None:
    args = run.args
    pool = HttpPool("127.0.0.1", port, PREDICT_PATH, args.max_connections)
    phase_s = args.seconds / len(args.multipliers)
    rates = [m * run.capacity for m in args.multipliers]

    def on_phase(index: int, answers: list[Answer]) -> None:
        run.rss_by_phase.append(rss_mib(run.pid))  # a /proc read: a fraction of a millisecond
        got = sum(a.done > 0 for a in answers)
        ok = sum(a.status == 200 for a in answers)
        r503 = sum(a.status == 503 for a in answers)
        say(
            f"phase {index + 1}/{len(rates)} ({args.multipliers[index]:g}x, {rates[index]:,.0f} "
            f"req/s, {phase_s:g} s): sent {len(answers):,}; finished so far {got:,} "
            f"(200: {ok:,}, 503: {r503:,})"
        )

    run.plan = plan = LoadPlan(
        rates=rates,
        phase_s=phase_s,
        poisson=args.arrivals == "poisson",
        timeout_s=args.client_timeout_s,
        seed=args.seed,
        slow_count=args.slow_clients,
        slow_body_bytes=args.slow_body_bytes,
        slow_interval_s=args.slow_interval_s,
        redis_restart_phase=args.redis_restart_phase,
        redis_down_s=args.redis_down_s,
        on_phase=on_phase,
    )
    say(
        "load: "
        + ", then ".join(
            f"{m:g}x = {r:,.0f} req/s for {phase_s:g} s"
            for m, r in zip(args.multipliers, rates, strict=True)
        )
        + f"; {args.slow_clients} slow clients; Redis restart: "
        + (f"phase {args.redis_restart_phase}" if args.redis_restart_phase else "none")
    )

    async def go() -> tuple[list[list[Answer]], list[SlowOutcome]]:
        try:
            return await run_load(pool, bodies, redis, plan, "127.0.0.1", port)
        finally:
            pool.close()

    # A full garbage collection walks every object, by the 10x phase tens of thousands of
    # requests' records and tasks: one pass held the generator's loop 237 ms (measured), making
    # a hundred requests late. The load makes few cycles; collect them after it.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        run.phases, run.slow = loop_runner()(go())
    finally:
        gc.enable()
        gc.unfreeze()
    run.pool = {"opened": pool.opened, "peak": pool.peak_open, "stale": pool.stale_retries}
    say(
        f"every request answered or timed out {plan.drained - plan.load_end:.1f} s after the "
        "schedule ended"
    )


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
