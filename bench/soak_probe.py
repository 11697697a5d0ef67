"""The soak's health prober: `GET /v2/health/live` and `/v2/health/ready`, in turn, every
``--interval-ms``, each on its own keep-alive connection, until SIGTERM; then it writes every
probe as JSON to ``--out``.

It runs as a process of its own (bench/soak.py starts it) so that its latencies are the server's
and not the load generator's: in the generator's event loop, or a thread of its process, a probe
would wait behind thousands of requests' callbacks or the GIL. A probe that overruns the interval
delays the next one (probes never overlap, as a kubelet's do not); a probe that fails (status
other than 200, a broken connection, ``--timeout-s``) is recorded with its status 0 or its code.

    python bench/soak_probe.py http://127.0.0.1:8000 --interval-ms 75 --out probes.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

ROUTES = ("/v2/health/live", "/v2/health/ready")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("url", help="the server's base URL, http://host:port")
    p.add_argument("--interval-ms", type=float, default=75.0, help="time between probe starts")
    p.add_argument("--timeout-s", type=float, default=10.0, help="a probe's socket timeout")
    p.add_argument("--out", type=Path, required=True, help="JSON file written at SIGTERM")
    args = p.parse_args(argv)

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    u = urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    conns: list[http.client.HTTPConnection | None] = [None] * len(ROUTES)
    probes: list[tuple[float, int, int, float]] = []  # (monotonic start, route, status, ms)
    interval_s = args.interval_ms / 1000
    next_at = time.monotonic()
    i = 0
    while not stopping:
        route = i % len(ROUTES)
        i += 1
        started = time.monotonic()
        status = 0
        try:
            conn = conns[route]
            if conn is None:
                conn = conns[route] = http.client.HTTPConnection(host, port, timeout=args.timeout_s)
            conn.request("GET", ROUTES[route])
            response = conn.getresponse()
            response.read()
            status = response.status
            if response.will_close:
                conn.close()
                conns[route] = None
        except (OSError, http.client.HTTPException):
            if conns[route] is not None:
                conns[route].close()  # type: ignore[union-attr]
            conns[route] = None
        probes.append((started, route, status, (time.monotonic() - started) * 1000))
        next_at = max(next_at + interval_s, time.monotonic())
        delay = next_at - time.monotonic()
        if delay > 0 and not stopping:
            time.sleep(delay)  # SIGTERM interrupts it; the handler sets ``stopping``
    args.out.write_text(json.dumps({"routes": ROUTES, "probes": probes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
