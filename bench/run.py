"""Run the comparison: frugal vs bare uvicorn vs a naive FastAPI server vs LitServe.

    python bench/run.py --workload w1,w2,w2-varied --servers frugal,naive,litserve \
        --connections 1,16,64 --seconds 10
    python bench/run.py --workload w1 --servers bare,frugal,frugal@auto,naive --connections 16,64

For each workload and server: start the server as a subprocess (its own session), wait for its
health URL, check one answer, then for each connection count warm up and run wrk closed-loop
(bench/loadgen.py), reading the server tree's CPU time and memory around the measured run; stop
the server and everything it started. Writes ``bench/results/<timestamp>.json`` (every number,
plus the machine and library versions) and ``<timestamp>.md``, and prints the Markdown table.

$ per 1k requests = price_per_hour / 3600 x wall seconds / requests x 1000 at c7i.large's
$0.08925/h: what the machine costs while it serves this load, idle cores included.

Servers:
  bare      bench/bare_server.py: raw ASGI under uvicorn with frugal's uvicorn options, reads the
            body and answers a constant JSON body (the floor; any workload, no model)
  lean      bench/lean_server.py: W1 only; the least a batching JSON server does per request
            (orjson, a 2 ms / 64-row micro-batcher, predict_proba on a worker thread, frugal's
            response headers) with none of frugal's books: splits frugal's ratio to bare
  frugal    .venv/bin/frugal serve bench/configs/<w1|w2>.yaml --port P
            (POST /v1/endpoints/<digits|minilm>/predict, ready at /v2/health/ready)
  frugal-noledger  W1 only: the same with `ledger: {enabled: false}` (configs/w1-no-ledger.yaml):
            what writing the ledger costs, by difference
  frugal-onnx  W1 only: the same model converted to ONNX by frugal (configs/w1-onnx.yaml,
            bench/models.py's ensure_w1_onnx) on frugal's onnx runtime: scikit-learn's per-call
            input checks, by difference (needs frugal[onnx])
  frugal-noop  W1 only: W1's requests answered by a model that does nothing (noop_model.py on
            frugal's python runtime, configs/w1-noop.yaml): frugal's own cost a request
  frugal@N  the same with --workers N (N a number or auto), e.g. frugal@auto, frugal@2
  base      frugal serve with the frugal package from --base-src DIR (e.g. `git archive main`
            unpacked there) first on PYTHONPATH: an A/B of two versions of the code in one run
  naive     bench/naive_server.py: FastAPI sync endpoint, one request = one model call
  litserve  bench/litserve_server.py: LitServe, max_batch_size=32, batch_timeout=5 ms
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import models  # noqa: E402

PRICE_PER_HOUR = 0.08925  # c7i.large on-demand, us-east-1
PYTHON = sys.executable
WORKLOADS = ("w1", "w2", "w2-varied")
# and frugal@N: --workers N
# W1-only variants of the frugal server: their config's suffix, and what writes that config
W1_VARIANTS = {
    "frugal-noledger": ("no-ledger", models.ensure_w1),
    "frugal-onnx": ("onnx", models.ensure_w1_onnx),
    "frugal-noop": ("noop", models.ensure_w1_noop),
}
SERVERS = ("bare", "lean", "frugal", *W1_VARIANTS, "base", "naive", "litserve")


def frugal_bin() -> str:
    here = Path(PYTHON).parent / "frugal"
    return str(here) if here.exists() else (shutil.which("frugal") or "frugal")


def server_for(
    name: str, workload: str, port: int, logs: Path, args: argparse.Namespace
) -> tuple[loadgen.Server, str]:
    """(Server to start, predict URL)."""
    base = f"http://127.0.0.1:{port}"
    log = logs / f"{name}-{workload}.log"
    w2_opts = (
        ["--backend", args.w2_backend, "--threads", str(args.w2_threads)]
        if workload != "w1"
        else []
    )
    if name in ("bare", "lean"):
        if name == "lean" and workload != "w1":
            raise ValueError("server `lean` serves W1 only (bench/lean_server.py)")
        cmd = [PYTHON, str(BENCH / f"{name}_server.py"), "--port", str(port)]
        return loadgen.Server(name, cmd, f"{base}/health", log, cwd=ROOT), f"{base}/predict"
    if name in ("frugal", "base", *W1_VARIANTS) or name.startswith("frugal@"):
        cfg = BENCH / "configs" / ("w1.yaml" if workload == "w1" else "w2.yaml")
        if name in W1_VARIANTS:
            if workload != "w1":
                raise ValueError(f"server `{name}` serves W1 only")
            suffix, write_config = W1_VARIANTS[name]
            write_config()
            cfg = BENCH / "configs" / f"w1-{suffix}.yaml"
        endpoint = "digits" if workload == "w1" else "minilm"
        cmd = [frugal_bin(), "serve", str(cfg), "--port", str(port), "--log-level", "warning"]
        if name.startswith("frugal@"):
            cmd += ["--workers", name.partition("@")[2]]
        env = None
        if name == "base":
            if args.base_src is None:
                raise ValueError("server `base` needs --base-src DIR")
            env = dict(os.environ, PYTHONPATH=str(Path(args.base_src).resolve()))
        return (
            loadgen.Server(name, cmd, f"{base}/v2/health/ready", log, env=env, cwd=ROOT),
            f"{base}/v1/endpoints/{endpoint}/predict",
        )
    if name == "naive":
        cmd = [
            PYTHON,
            str(BENCH / "naive_server.py"),
            "--workload",
            workload,
            "--port",
            str(port),
            *w2_opts,
        ]
        return loadgen.Server(name, cmd, f"{base}/health", log, cwd=ROOT), f"{base}/predict"
    if name == "litserve":
        cmd = [
            PYTHON,
            str(BENCH / "litserve_server.py"),
            "--workload",
            workload,
            "--port",
            str(port),
            *w2_opts,
        ]
        return loadgen.Server(name, cmd, f"{base}/health", log, cwd=ROOT), f"{base}/predict"
    raise ValueError(f"unknown server {name!r} ({', '.join(SERVERS)})")


def check_answer(url: str, body: str, workload: str) -> None:
    """One request before the load: 200 and one prediction of the right shape."""
    import httpx

    r = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:500]}")
    preds = r.json().get("predictions")
    if not isinstance(preds, list) or len(preds) != 1:
        raise RuntimeError(f"{url}: expected one prediction, got {r.text[:500]}")
    if workload != "w1":
        vec = preds[0]
        if isinstance(vec, dict):  # a server that wraps values ({"value": ..., "confidence": ...})
            vec = vec.get("value", vec.get("embedding"))
        if not isinstance(vec, list) or len(vec) != 384:
            raise RuntimeError(f"{url}: expected a 384-float embedding, got {str(preds)[:300]}")


def prepare(workloads: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Build W1 (and its config with the real sha256), export MiniLM to ONNX once, write bodies."""
    info: dict[str, Any] = {}
    if "w1" in workloads:
        info["w1_sha256"] = models.ensure_w1()
    if any(w != "w1" for w in workloads):
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import embedder; "
            "print(embedder.onnx_path())"
        )
        r = subprocess.run(
            [PYTHON, "-c", code, str(models.MINILM_DIR)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"MiniLM ONNX export failed:\n{r.stderr[-3000:]}")
        info["minilm_onnx"] = r.stdout.strip().splitlines()[-1]
    return info


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for mod in (
        "numpy",
        "sklearn",
        "onnxruntime",
        "torch",
        "tokenizers",
        "fastapi",
        "litserve",
        "uvicorn",
    ):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # not installed / no version: leave it out
            pass
    try:
        wrk = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        wrk = None
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "versions": versions,
        "wrk": wrk,
    }


def dollars_per_1k(
    duration_s: float, requests: int, price_per_hour: float = PRICE_PER_HOUR
) -> float:
    return price_per_hour / 3600 * duration_s / requests * 1000 if requests else float("nan")


def bare_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's server CPU per request over the bare server's at the same workload and load
    (``cpu_x_bare``), when the run measured bare: the issue-17 figure, within one run."""
    floor = {
        (r["workload"], r["mode"], r.get("connections"), r.get("rate")): r
        for r in rows
        if r.get("server") == "bare" and "error" not in r
    }
    for r in rows:
        if "error" in r:
            continue
        bare = floor.get((r["workload"], r["mode"], r.get("connections"), r.get("rate")))
        if bare is not None and bare.get("server_cpu_ms_per_req"):
            r["cpu_x_bare"] = r["server_cpu_ms_per_req"] / bare["server_cpu_ms_per_req"]


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| workload | server | load (conns) | req/s | p50 ms | p99 ms | server CPU-ms/req "
        "| CPU x bare | cores busy "
        "| RSS MiB | $ / 1k req | errors |"
    )
    out = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            out.append(
                f"| {r['workload']} | {r['server']} | {r.get('connections', '')} | failed: "
                f"{' '.join(r['error'].split())[:80].replace('|', '/')} | | | | | | | | |"
            )
            continue
        ratio = f"{r['cpu_x_bare']:.2f}" if "cpu_x_bare" in r else "-"
        errs = sum(v for k, v in r["errors"].items() if k != "non_2xx")  # non_2xx == status
        load = r["connections"] if r["mode"] == "closed" else f"open {r['rate']:g}/s"
        out.append(
            f"| {r['workload']} | {r['server']} | {load} | {r['rps']:.1f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r.get('server_cpu_ms_per_req', float('nan')):.3f} "
            f"| {ratio} | {r.get('server_cores_busy', float('nan')):.2f} "
            f"| {r.get('rss_peak_mib', float('nan')):.0f} "
            f"| {r['usd_per_1k']:.6f} | {errs} |"
        )
    return "\n".join(out)


def raw_table(rows: list[dict[str, Any]]) -> str:
    out = ["| workload | raw limit case | batch | items/s | ms/batch |", "|---|---|---:|---:|---:|"]
    for r in rows:
        out.append(
            f"| {r['workload']} | {r['case']} | {r['batch']} | {r['items_per_s']:.1f} "
            f"| {r['ms_per_batch']:.2f} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workload", default="w1", help="comma-separated: w1, w2, w2-varied")
    p.add_argument("--servers", default="frugal,naive,litserve")
    p.add_argument("--connections", default="1,16,64")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each point")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument(
        "--rates", default="", help="also open-loop points at these requests/s (asyncio client)"
    )
    p.add_argument(
        "--raw", action="store_true", help="also run bench/raw_limit.py for each workload"
    )
    p.add_argument("--raw-seconds", type=float, default=3.0)
    p.add_argument(
        "--w2-backend", default="onnx", help="naive/litserve W2 backend (frugal: configs/w2.yaml)"
    )
    p.add_argument("--w2-threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=BENCH / "results")
    p.add_argument("--base-src", type=Path, help="server `base`: a checkout whose frugal to run")
    args = p.parse_args(argv)

    workloads = [w for w in args.workload.split(",") if w]
    servers = [s for s in args.servers.split(",") if s]
    conns = [int(c) for c in args.connections.split(",") if c]
    rates = [float(r) for r in args.rates.split(",") if r]
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    for s in servers:
        if s not in SERVERS and not (s.startswith("frugal@") and s.partition("@")[2]):
            p.error(f"unknown server {s!r} ({', '.join(SERVERS)}, frugal@N)")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    logs = args.out_dir / f"{stamp}-logs"
    result: dict[str, Any] = {
        "timestamp": stamp,
        "machine": machine(),
        "price_usd_per_hour": PRICE_PER_HOUR,
        "instance": "c7i.large",
        "args": {k: str(v) for k, v in vars(args).items()},
        "prepared": prepare(workloads, args),
        "runs": [],
        "raw_limit": [],
    }
    out_json = args.out_dir / f"{stamp}.json"

    def save() -> None:
        tmp = out_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out_json)

    for workload in workloads:
        bodies = loadgen.make_bodies(workload)
        bodies_file = loadgen.write_bodies(bodies, BENCH / "data" / f"bodies-{workload}.jsonl")
        for name in servers:
            port = loadgen.free_port()
            server, url = server_for(name, workload, port, logs, args)
            print(f"[{workload}] starting {name} on :{port} ...", file=sys.stderr, flush=True)
            try:
                t0 = dt.datetime.now()
                server.start()
                startup_s = (dt.datetime.now() - t0).total_seconds()
                check_answer(url, bodies[0], workload)
                idle_mem = loadgen.memory_mib(server.pid)
                points = [("closed", {"connections": c}) for c in conns]
                points += [("open", {"rate": rate}) for rate in rates]
                for mode, point in points:
                    print(
                        f"[{workload}] {name} {point} {args.seconds:.0f}s ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    r = loadgen.measure(
                        url,
                        bodies_file,
                        seconds=args.seconds,
                        warmup_s=args.warmup,
                        server_pid=server.pid,
                        mode=mode,
                        wrk_threads=args.wrk_threads,
                        **point,
                    )
                    r.pop("wrk_stdout", None)
                    r.update(
                        workload=workload,
                        server=name,
                        url=url,
                        startup_s=startup_s,
                        idle_rss_mib=idle_mem["rss_mib"],
                        idle_pss_mib=idle_mem["pss_mib"],
                        usd_per_1k=dollars_per_1k(r["duration_s"], r["requests"]),
                    )
                    result["runs"].append(r)
                    save()
            except Exception as exc:  # record the failure, go on with the next server
                print(f"[{workload}] {name} failed: {exc}", file=sys.stderr, flush=True)
                result["runs"].append(
                    {"workload": workload, "server": name, "error": str(exc)[:4000]}
                )
                save()
            finally:
                server.stop()
        if args.raw:
            cmd = [
                PYTHON,
                str(BENCH / "raw_limit.py"),
                "--workload",
                workload,
                "--json",
                "--seconds",
                str(args.raw_seconds),
                "--backend",
                args.w2_backend,
                "--threads",
                str(args.w2_threads),
            ]
            if workload != "w2-varied" or "w2" not in workloads:  # w2 already runs the varied cases
                r = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    check=False,
                    env=dict(os.environ, HF_HUB_OFFLINE="1"),
                )
                result["raw_limit"].extend(
                    json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")
                )
                save()

    bare_ratios(result["runs"])
    save()
    md = [
        f"# bench {stamp}",
        "",
        f"{result['machine']['cpu']} ({result['machine']['cores']} cores), load avg at start "
        f"{', '.join(f'{x:.2f}' for x in result['machine']['loadavg_at_start'])}; "
        f"{args.seconds:.0f} s per point after {args.warmup:.0f} s warm-up; wrk closed loop, "
        f"{args.wrk_threads} wrk thread(s) on the same machine; "
        f"$ at c7i.large ${PRICE_PER_HOUR}/h.",
        "",
        table(result["runs"]),
    ]
    if result["raw_limit"]:
        md += ["", raw_table(result["raw_limit"])]
    text = "\n".join(md) + "\n"
    (args.out_dir / f"{stamp}.md").write_text(text)
    print(text)
    print(
        f"wrote {out_json.relative_to(ROOT) if out_json.is_relative_to(ROOT) else out_json}",
        file=sys.stderr,
    )
    return 0 if all("error" not in r for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
