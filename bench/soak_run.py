"""One soak from start to end: Redis, the server, capacity, the load with everything beside it,
shutdown and the ledger, collected into a ``Run`` that bench/soak.py turns into the report.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_client import Answer, HttpPool, RedisProcess, SlowOutcome
from soak_load import PREDICT_PATH, Bodies, LoadPlan, loop_runner, run_capacity, run_load
from soak_setup import BENCH, ledger_rows, rss_mib, set_nice, write_config


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
