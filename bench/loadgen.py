"""Load generation and server accounting for bench/.

Closed loop (the default): ``wrk`` with a generated Lua script that POSTs JSON bodies read from a
file, one per line, cycling through them (so W2-varied sends different sentences); a Lua ``done``
prints wrk's exact latency percentiles (wrk keeps a 1 µs-resolution histogram, so p50/p99 are not
interpolated) as one JSON line, which this module parses.

Open loop (``--mode open --rate R``): a Python asyncio client (minimal HTTP/1.1 keep-alive, uvloop
when installed) that starts request i at t0 + i/R whatever happened before, and measures latency
from that scheduled time (no coordinated omission). wrk2 is not packaged in Debian, hence Python;
it needs CPU itself (tens of µs a request: fine for a few thousand requests/s, and it reports its
own CPU and its worst lag behind the schedule so an overloaded client shows).

Server accounting: CPU = utime + stime + cutime + cstime from /proc/<pid>/stat summed over the
server's process tree (LitServe and frugal may run several processes), read before and after the
measured run; memory = VmRSS summed over the tree, sampled every 0.25 s (peak kept), plus VmHWM and
Pss sums at the end. The client's own CPU (wrk's) is reported too: on a 2-core box the load
generator competes with the server for cores.

    # against a server that is already running (pid for CPU/RSS accounting is optional)
    python bench/loadgen.py --url http://127.0.0.1:8101/predict --workload w2-varied \
        --connections 1,16 --seconds 5 --pid 12345
    python bench/loadgen.py --url ... --workload w1 --mode open --rate 200 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# --------------------------------------------------------------------------- request bodies


def make_bodies(workload: str, n: int = 2000) -> list[str]:
    """JSON request bodies, one instance each: W1 digits rows, W2 the fixed sentence, W2-varied
    corpus sentences (seed 0)."""
    import corpus

    if workload == "w1":
        import models

        items: list[Any] = models.w1_rows(min(n, 1797))
    elif workload == "w2":
        items = [corpus.FIXED_SENTENCE]
    elif workload == "w2-varied":
        items = corpus.sentences(n, seed=0)
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return [json.dumps({"instances": [x]}, separators=(",", ":")) for x in items]


def write_bodies(bodies: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for b in bodies:
            assert "\n" not in b
            f.write(b + "\n")
    return path


# --------------------------------------------------------------------------- process accounting


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen or not os.path.exists(f"/proc/{p}"):
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


def cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime over the tree: a child that exits and is reaped by a tree member
    moves its time into the parent's cutime, so deltas stay right."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # fields 14..17 of stat(5)
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_mib(pid: int) -> dict[str, float]:
    """Sums over the tree: VmRSS, VmHWM (each process's own peak) and Pss (shared pages split)."""
    rss = hwm = pss = 0
    for p in process_tree(pid):
        rss += _status_kib(p, "VmRSS")
        hwm += _status_kib(p, "VmHWM")
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
        except OSError:
            pass
    return {"rss_mib": rss / 1024, "hwm_mib": hwm / 1024, "pss_mib": pss / 1024}


class RssSampler:
    """Samples the tree's summed VmRSS in a thread; ``peak_mib`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = sum(_status_kib(p, "VmRSS") for p in process_tree(self.pid)) / 1024
            self.peak_mib = max(self.peak_mib, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A server started as a subprocess in its own session; ``stop`` kills its whole tree."""

    name: str
    cmd: list[str]
    health_url: str
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ready_timeout_s: float = 180.0
    proc: subprocess.Popen | None = None
    _known: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("HF_HUB_OFFLINE", "1")
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode} before it was "
                        f"ready; log {self.log_path}:\n{self.tail()}"
                    )
                self._known.update(process_tree(self.pid))
                try:
                    if client.get(self.health_url).status_code == 200:
                        self._known.update(process_tree(self.pid))
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"{self.name} not ready after {self.ready_timeout_s:.0f}s; log "
            f"{self.log_path}:\n{self.tail()}"
        )

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL the group and any descendant we saw."""
        if self.proc is None:
            return
        self._known.update(process_tree(self.pid))
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for p in sorted(self._known):  # descendants that left the group (setsid) but are ours
            if p != self.proc.pid and os.path.exists(f"/proc/{p}"):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.2)
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- closed loop: wrk

LUA = r"""
-- generated by bench/loadgen.py: POST bodies from a file, cycling; print exact percentiles
local bodies_file = "%(bodies)s"
local path = "%(path)s"
local reqs = {}
local idx = 0
local counter = 0

function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(bodies_file) do
    if #line > 0 then reqs[#reqs + 1] = wrk.format("POST", path, headers, line) end
  end
  idx = (offset or 0) %% #reqs
end

function request()
  idx = idx %% #reqs + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},' ..
    '"lat_us":{"min":%%d,"mean":%%.1f,"stdev":%%.1f,"max":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk not found: apt-get install -y wrk (or use --mode open)")
    return found


def run_wrk(
    url: str,
    bodies_file: Path,
    connections: int,
    seconds: float,
    threads: int = 1,
    timeout_s: float = 30.0,
    wrapper: Sequence[str] = (),
) -> dict[str, Any]:
    """One closed-loop wrk run; returns requests, req/s, latency percentiles (ms), errors, and
    wrk's own CPU seconds. ``wrapper`` goes before wrk's command (e.g. ``taskset -c 1``)."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path or "/"
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="frugal-wrk-", delete=False) as f:
        f.write(LUA % {"bodies": str(bodies_file.resolve()), "path": path})
        lua = f.name
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(
            [
                *wrapper,
                wrk_path(),
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                f"{int(timeout_s)}s",
                "--latency",
                "-s",
                lua,
                url,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        os.unlink(lua)
    m = re.search(r"^WRKJSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(
            f"wrk failed (rc {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        )
    d = json.loads(m.group(1))
    lat = d["lat_us"]
    n = d["requests"]
    dur = d["duration_us"] / 1e6
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    return {
        "mode": "closed",
        "connections": connections,
        "requests": n,
        "duration_s": dur,
        "rps": n / dur if dur else 0.0,
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "mean_ms": lat["mean"] / 1000,
        "max_ms": lat["max"] / 1000,
        "errors": {**d["errors"], "non_2xx": int(non2xx.group(1)) if non2xx else 0},
        "client_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "wrk_stdout": r.stdout,
    }


# --------------------------------------------------------------------------- open loop: asyncio


class _Http:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: a few tens of µs of CPU per request
    (httpx's AsyncClient needs milliseconds, so at a few hundred requests/s the client, not the
    server, would be measured). Enough for these servers: Content-Length or chunked bodies."""

    def __init__(self, url: str, max_connections: int) -> None:
        from urllib.parse import urlsplit

        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.head = (
            f"POST {u.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
        )
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.opened = 0

    def encode(self, body: str) -> bytes:
        raw = body.encode()
        return self.head.format(n=len(raw)).encode() + raw

    async def post(self, request: bytes) -> int:
        async with self.slots:
            if self.idle:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.opened += 1
            try:
                writer.write(request)
                status = int((await reader.readline()).split(b" ", 2)[1])
                length, chunked, close = 0, False, False
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                    elif name == b"connection" and b"close" in value.lower():
                        close = True
                if chunked:
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                elif length:
                    await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def send_on_schedule(
    rate: float, total: int, one: Callable[[int, float], Coroutine[Any, Any, None]], t0: float
) -> float:
    """Open loop: start ``one(i, at)`` at ``at = t0 + i / rate`` whether or not earlier requests
    were answered, then wait for all; returns the largest send lag (seconds behind schedule)."""
    tasks: list[asyncio.Task[None]] = []
    max_lag = 0.0
    for i in range(total):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    return max_lag


def run_open_loop(
    url: str,
    bodies: Sequence[str],
    rate: float,
    seconds: float,
    timeout_s: float = 30.0,
    max_connections: int = 1024,
) -> dict[str, Any]:
    """Fixed arrival rate; latency from each request's scheduled start (no coordinated omission:
    a slow server makes later requests wait, and that wait counts). Requests still unanswered
    ``timeout_s`` after their start count as timeouts."""

    async def go() -> dict[str, Any]:
        http = _Http(url, max_connections)
        requests = [http.encode(b) for b in bodies]
        latencies: list[float] = []
        errors = {"status": 0, "exception": 0, "timeout": 0}
        total = int(rate * seconds)

        async def one(i: int, at: float) -> None:
            try:
                status = await asyncio.wait_for(http.post(requests[i % len(requests)]), timeout_s)
            except TimeoutError:
                errors["timeout"] += 1
                return
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                errors["exception"] += 1
                return
            if status != 200:
                errors["status"] += 1
                return
            latencies.append(time.perf_counter() - at)

        t0 = time.perf_counter() + 0.05
        max_lag = await send_on_schedule(rate, total, one, t0)
        wall = time.perf_counter() - t0
        http.close()
        latencies.sort()

        def pct(q: float) -> float:
            if not latencies:
                return float("nan")
            return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] * 1000

        return {
            "mode": "open",
            "rate": rate,
            "requests": len(latencies),
            "sent": total,
            "duration_s": wall,
            "rps": len(latencies) / wall if wall else 0.0,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "p999_ms": pct(99.9),
            "mean_ms": sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
            "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
            "errors": errors,
            "client_max_lag_ms": max_lag * 1000,
            "connections_opened": http.opened,
        }

    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    before = resource.getrusage(resource.RUSAGE_SELF)
    out = runner(go())
    after = resource.getrusage(resource.RUSAGE_SELF)
    out["client_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return out


# --------------------------------------------------------------------------- one measured run


def measure(
    url: str,
    bodies_file: Path,
    *,
    connections: int = 1,
    seconds: float = 10.0,
    warmup_s: float = 2.0,
    server_pid: int | None = None,
    mode: str = "closed",
    rate: float = 100.0,
    wrk_threads: int = 1,
) -> dict[str, Any]:
    """Warm up, then one measured run with the server's CPU and memory around it."""
    bodies = [line for line in bodies_file.read_text(encoding="utf-8").splitlines() if line]
    if warmup_s > 0:
        if mode == "closed":
            run_wrk(url, bodies_file, connections, warmup_s, wrk_threads)
        else:
            run_open_loop(url, bodies, rate, warmup_s)
    cpu0 = cpu_seconds(server_pid) if server_pid else None
    sampler = RssSampler(server_pid) if server_pid else None
    if sampler:
        sampler.__enter__()
    try:
        if mode == "closed":
            res = run_wrk(url, bodies_file, connections, seconds, wrk_threads)
        else:
            res = run_open_loop(url, bodies, rate, seconds)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    if server_pid:
        cpu = cpu_seconds(server_pid) - (cpu0 or 0.0)
        res["server_cpu_s"] = cpu
        res["server_cpu_ms_per_req"] = (
            cpu * 1000 / res["requests"] if res["requests"] else float("nan")
        )
        res["server_cores_busy"] = cpu / res["duration_s"] if res["duration_s"] else float("nan")
        res.update(memory_mib(server_pid))
        res["rss_peak_mib"] = max(sampler.peak_mib if sampler else 0.0, res["rss_mib"])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", choices=["w1", "w2", "w2-varied"], help="generate the bodies")
    src.add_argument("--bodies", type=Path, help="file of JSON bodies, one per line")
    p.add_argument("--connections", default="1,16", help="closed loop: comma-separated")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--pid", type=int, help="server pid: report its tree's CPU and memory")
    p.add_argument("--mode", choices=["closed", "open"], default="closed")
    p.add_argument("--rate", default="100", help="open loop: requests/s, comma-separated")
    p.add_argument("--wrk-threads", type=int, default=1)
    args = p.parse_args(argv)

    if args.bodies:
        bodies_file = args.bodies
    else:
        bodies_file = write_bodies(
            make_bodies(args.workload), BENCH / "data" / f"bodies-{args.workload}.jsonl"
        )
    points = args.connections.split(",") if args.mode == "closed" else args.rate.split(",")
    for point in points:
        kw = {"connections": int(point)} if args.mode == "closed" else {"rate": float(point)}
        r = measure(
            args.url,
            bodies_file,
            seconds=args.seconds,
            warmup_s=args.warmup,
            server_pid=args.pid,
            mode=args.mode,
            wrk_threads=args.wrk_threads,
            **kw,
        )
        r.pop("wrk_stdout", None)
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
