"""Priority by caller tier under overload (issue 17, part 3): who gets served, who gets the 503s.

A real `frugal serve` with auth on and two API keys, one of tier ``premium`` and one of tier
``free``, serves a slow model (bench/overload.py's: the digits LogisticRegression, then a sleep
per item, so capacity is ``1000 / --per-item-ms`` items a second whatever the batch). An
open-loop client sends ``--factor`` x capacity for ``--seconds``, ``--premium-share`` of the
requests with the premium key, the rest with the free key (request i starts at t0 + i/rate
whatever happened before; latency counts from that scheduled start, so no coordinated omission).

It runs the same load twice on the same machine: once without ``server.priority`` (one FIFO
queue, today's default) and once with ``server.priority: {tiers: [premium, free]}``
(``--starvation-ms``), and reports per run and tier: requests by status, the 503 share, and the
latency of the answered ones (p50 / p99) against ``--slo-ms``.

    python bench/priority.py                      # 2x capacity, 20% premium, 20 s a run
    python bench/priority.py --factor 2 --premium-share 0.2 --seconds 20 --slo-ms 500

Results: a markdown table on stdout and in bench/results/priority-<time>.md, JSON beside it;
the configs, key file, ledgers and logs go to a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from loadgen import Server, free_port, send_on_schedule  # noqa: E402  (bench/ siblings)
from overload import _post, pct  # noqa: E402
from soak_setup import commit, machine  # noqa: E402

TIERS = ("premium", "free")


def write_config(folder: Path, args: argparse.Namespace, priority: bool) -> Path:
    import yaml

    name = "priority" if priority else "fifo"
    config: dict[str, Any] = {
        "instance": {"price_usd_per_hour": 0.0464, "slots": 2},
        "models": [{
            "name": "slow", "runtime": "python", "path": str(BENCH),
            "factory": "overload:make_slow_model",
            "options": {"per_item_ms": args.per_item_ms},
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
            "batching": {"max_batch_size": args.max_batch_size, "timeout_ms": args.timeout_ms},
        }],
        "endpoints": [{"name": "slow", "model": "slow"}],
        "ledger": {"path": str(folder / f"ledger-{name}.db")},
        "auth": {"keys": str(folder / "keys.db")},
    }  # fmt: skip
    if priority:
        config["server"] = {"priority": {"tiers": list(TIERS), "starvation_ms": args.starvation_ms}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def open_loop(
    port: int, requests: dict[str, list[bytes]], tiers: list[str], rate: float
) -> tuple[list[tuple[str, int, float, float]], float]:
    """Request i (of tier ``tiers[i]``) starts at t0 + i/rate: (tier, status, latency_ms,
    scheduled second)."""
    answers: list[tuple[str, int, float, float]] = []

    async def one(i: int, at: float) -> None:
        tier = tiers[i]
        bodies = requests[tier]
        try:
            status, _ = await asyncio.wait_for(
                _post("127.0.0.1", port, bodies[i % len(bodies)]), 60
            )
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError):
            status = -1
        answers.append((tier, status, 1000 * (time.perf_counter() - at), i / rate))

    lag = await send_on_schedule(rate, len(tiers), one, time.perf_counter() + 0.05)
    return answers, lag


def run_one(args: argparse.Namespace, folder: Path, secrets: dict[str, str], priority: bool
            ) -> dict[str, Any]:  # fmt: skip
    import httpx
    from sklearn.datasets import load_digits

    config = write_config(folder, args, priority)
    port = free_port()
    frugal = str(Path(sys.executable).with_name("frugal"))
    rows = load_digits().data[:200]
    head = (
        "POST /v1/endpoints/slow/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nContent-Length: {n}\r\n\r\n"
    )
    bodies = [json.dumps({"instances": [r.tolist()]}).encode() for r in rows]
    requests = {
        tier: [head.format(key=secrets[tier], n=len(b)).encode() + b for b in bodies]
        for tier in TIERS
    }
    rate = args.factor * 1000 / args.per_item_ms
    total = int(rate * args.seconds)
    rng = random.Random(args.seed)  # the same tier sequence in both runs
    tiers = ["premium" if rng.random() < args.premium_share else "free" for _ in range(total)]
    name = "priority" if priority else "fifo"
    server = Server(
        name=f"frugal-{name}",
        cmd=[frugal, "serve", str(config), "--port", str(port)],
        health_url=f"http://127.0.0.1:{port}/v2/health/ready",
        log_path=folder / f"serve-{name}.log",
    )
    with server:
        url = f"http://127.0.0.1:{port}/v1/endpoints/slow/predict"
        auth = {"authorization": f"Bearer {secrets['free']}", "content-type": "application/json"}
        with httpx.Client(timeout=30, headers=auth) as client:  # the batcher measures first
            for body in bodies[:20]:
                client.post(url, content=body).raise_for_status()
        since = time.time()
        answers, lag = asyncio.run(open_loop(port, requests, tiers, rate))
    server_ms = ledger_latencies(folder / f"ledger-{name}.db", since)
    out: dict[str, Any] = {"queue": name, "rate": rate, "sent": total,
                           "client_max_lag_ms": 1000 * lag, "tiers": {}}  # fmt: skip
    for tier in TIERS:
        mine = [(s, ms) for t, s, ms, _ in answers if t == tier]
        by: dict[int, int] = {}
        for status, _ in mine:
            by[status] = by.get(status, 0) + 1
        ok = [ms for s, ms in mine if s == 200]
        out["tiers"][tier] = {
            "sent": len(mine),
            "by_status": {str(k): v for k, v in sorted(by.items())},
            "pct_503": 100 * by.get(503, 0) / len(mine) if mine else float("nan"),
            "ok_p50_ms": pct(ok, 50),
            "ok_p99_ms": pct(ok, 99),
            "within_slo": pct(ok, 99) <= args.slo_ms,
            "server_ok_p50_ms": pct(server_ms.get(tier, []), 50),
            "server_ok_p99_ms": pct(server_ms.get(tier, []), 99),
            # per second of the run: (requests, answered 200, their p99 ms)
            "by_second": [
                (len(sec), len(ok_s := [ms for s, ms in sec if s == 200]), pct(ok_s, 99))
                for second in range(int(args.seconds))
                if (sec := [(s, ms) for t, s, ms, at in answers if t == tier and int(at) == second])
            ],
        }
    return out


def ledger_latencies(ledger: Path, since: float) -> dict[str, list[float]]:
    """The answered requests' latency by tier as the server's ledger has it (request read to
    answer): the queue's doing, without the client's and the kernel's share of a busy machine."""
    import sqlite3

    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT tier, latency_ms FROM requests WHERE status = 200 AND ts >= ?", (since,)
        ).fetchall()
    out: dict[str, list[float]] = {}
    for tier, ms in rows:
        out.setdefault(tier, []).append(ms)
    return out


def table(results: list[dict[str, Any]], slo_ms: float) -> str:
    lines = [
        f"| queue | tier | sent | 200 | 503 | 504 | 503 % | answered p50 / p99 ms (client) | "
        f"p50 / p99 ms (server) | client p99 within {slo_ms:g} ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        for tier, t in r["tiers"].items():
            s = t["by_status"]
            lines.append(
                f"| {r['queue']} | {tier} | {t['sent']} | {s.get('200', 0)} | {s.get('503', 0)} "
                f"| {s.get('504', 0)} | {t['pct_503']:.1f} | {t['ok_p50_ms']:.0f} / "
                f"{t['ok_p99_ms']:.0f} | {t['server_ok_p50_ms']:.0f} / "
                f"{t['server_ok_p99_ms']:.0f} | {'yes' if t['within_slo'] else 'no'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--per-item-ms", type=float, default=10.0, help="model sleep per item")
    p.add_argument("--factor", type=float, default=2.0, help="load as a multiple of capacity")
    p.add_argument("--premium-share", type=float, default=0.2, help="share of premium requests")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each open-loop run")
    p.add_argument("--timeout-ms", type=float, default=1000.0, help="batching.timeout_ms")
    p.add_argument("--max-batch-size", type=int, default=4, help="batching.max_batch_size")
    p.add_argument("--starvation-ms", type=float, default=1000.0, help="priority.starvation_ms")
    p.add_argument("--slo-ms", type=float, default=500.0, help="premium's p99 latency target")
    p.add_argument("--seed", type=int, default=17, help="the tier sequence")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    if not 0 < args.premium_share < 1 or args.factor <= 0 or args.seconds <= 0:
        p.error("--premium-share must be in (0, 1); --factor and --seconds > 0")
    from frugal.access import KeyStore

    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="frugal-priority-") as tmp:
        store = KeyStore(Path(tmp) / "keys.db")
        secrets = {tier: store.create(f"{tier}-key", "user", tier=tier)[1] for tier in TIERS}
        results = [run_one(args, Path(tmp), secrets, priority) for priority in (False, True)]
    report = (
        f"`python bench/priority.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n\n"
        f"machine: {machine()}; commit {commit()}; capacity {1000 / args.per_item_ms:g} "
        f"items/s, load {args.factor:g}x ({results[0]['rate']:g} req/s) for {args.seconds:g} s, "
        f"{100 * args.premium_share:g}% premium, timeout {args.timeout_ms:g} ms, "
        f"starvation {args.starvation_ms:g} ms\n\n{table(results, args.slo_ms)}\n"
    )
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"priority-{stamp}.md").write_text(report)
    (args.out / f"priority-{stamp}.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "runs": results}, indent=2
    ))  # fmt: skip
    print(f"written: {args.out / f'priority-{stamp}.md'} (and .json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
