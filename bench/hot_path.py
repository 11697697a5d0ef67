"""frugal's own CPU per request, without HTTP: the ASGI app driven in-process.

    python bench/hot_path.py --requests 20000 --concurrency 64
    PYTHONPATH=/tmp/main-src python bench/hot_path.py   # the same on another checkout's code

Why: on a shared 2-core machine wrk's figures move with whatever else runs, while the CPU time a
process spends on a fixed number of requests moves much less. This builds the real app
(``FrugalApp`` on ``bench/configs/w1.yaml`` by default: the real model, batcher, cache,
recorder and SQLite ledger), runs its lifespan, and sends ``--requests`` W1 bodies through its
ASGI interface from ``--concurrency`` tasks, with ASGI messages in memory instead of uvicorn and
sockets. It reports the process's CPU time (every thread: the event loop, the model's slot
thread, the ledger writer) per request, in all and by thread (``cpu_us_per_req_by_thread``),
and the same for a constant-answer ASGI app (the floor of this harness) and for
``bench/lean_server.py``'s app (the work without frugal's books), driven the same way.
``--config`` takes another W1 config (``configs/w1-no-ledger.yaml``: the ledger's share, by
difference). Loop-lag shedding is off (``server.max_loop_lag_ms: null``). Compare two versions
of the code by running it on each, alternating (each run prints which frugal it ran).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

Message = MutableMapping[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
               Awaitable[None]]  # fmt: skip
PATH = "/v1/endpoints/digits/predict"


def scope_for(body: bytes) -> Message:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip


class Cycle:
    """One request's ASGI messages, shaped as uvicorn's RequestResponseCycle: ``receive`` is its
    bound method and ``message_event`` is set once the body has arrived (here: at once)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 0
        self.message_event = asyncio.Event()
        self.message_event.set()

    async def receive(self) -> Message:
        await self.message_event.wait()
        body, self.body = self.body, b""
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def one(app: App, body: bytes) -> int:
    """One request through the app; its status."""
    cycle = Cycle(body)
    await app(scope_for(body), cycle.receive, cycle.send)
    return cycle.status


async def drive(app: App, bodies: list[bytes], requests: int, concurrency: int) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < requests:
            i = next_index
            next_index += 1
            code = await one(app, bodies[i % len(bodies)])
            statuses[code] = statuses.get(code, 0) + 1

    threads0 = thread_cpu_s()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    threads = thread_cpu_s()
    by_thread = {name: round(1e6 * (s - threads0.get(name, 0.0)) / requests, 1)
                 for name, s in threads.items() if s - threads0.get(name, 0.0) > 0}  # fmt: skip
    return {"requests": requests, "cpu_s": cpu, "wall_s": wall,
            "cpu_us_per_req": 1e6 * cpu / requests, "statuses": statuses,
            "cpu_us_per_req_by_thread": by_thread}  # fmt: skip


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each Python thread, by name, from the OS's per-thread CPU clocks
    (as accounting/overhead.py's ThreadCpuClock reads them), so a result splits the event loop's
    share from the model's slot thread and the ledger writer's. Threads Python did not start
    (BLAS, onnxruntime) are in the process's total only."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, OverflowError):  # the thread ended meanwhile
            continue
        out[thread.name] = out.get(thread.name, 0.0) + cpu
    return out


async def constant(scope: Message, receive: Any, send: Any) -> None:
    """The floor: read the body, answer a constant JSON body."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"19")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"predictions":[0]}'})


def lean_app() -> App:
    """bench/lean_server.py's app: W1's work with none of frugal's books (its own batcher)."""
    import lean_server
    import models

    app: App = lean_server.make_app(lean_server.MicroBatcher(models.load_w1().estimator))
    return app


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import loadgen
    import models

    import frugal
    from frugal.config import load_config
    from frugal.serving import FrugalApp

    models.ensure_w1()
    bodies = [b.encode() for b in loadgen.make_bodies("w1")]
    config = load_config(args.config)
    # No loop-lag shedding: with no sockets, the driving tasks keep the loop busy back to back,
    # which the lag sampler would read as an overloaded server and answer 503.
    server = config.server.model_copy(update={"max_loop_lag_ms": None})
    app = FrugalApp(config.model_copy(update={"server": server}))
    startup: asyncio.Queue[Message] = asyncio.Queue()
    started: asyncio.Queue[Message] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                       startup.get, started.put))  # fmt: skip
    message = await started.get()
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {message}")
    try:
        await drive(app, bodies, args.warmup, args.concurrency)
        floor = await drive(constant, bodies, args.requests, args.concurrency)
        lean = await drive(lean_app(), bodies, args.requests, args.concurrency)
        result = await drive(app, bodies, args.requests, args.concurrency)
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan
    return {"frugal": str(Path(frugal.__file__).parent), "concurrency": args.concurrency,
            "app": result, "lean": lean, "floor": floor}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument(
        "--config", type=Path, default=BENCH / "configs" / "w1.yaml",
        help="a W1 config (default configs/w1.yaml; configs/w1-no-ledger.yaml: without the ledger)",
    )  # fmt: skip
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(run(args))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
