"""What bench/edge_hybrid.py and bench/edge_text.py share: a `frugal serve` to send the rest to,
and one EdgeCascade pass over held-out items (one request per item) summed from its record."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from frugal.edge import EdgeCascade
from frugal.optimize import free_port


@contextmanager
def frugal_server(config: Path, cwd: Path | None = None) -> Iterator[str]:
    """`frugal serve config` on a free port, ready; yields its URL, stops it after."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "frugal", "serve", str(config),
                               "--port", str(port)], cwd=cwd or config.parent)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait()


def hybrid_run(
    cascade: EdgeCascade, items: Sequence[Any], truth: Sequence[Any], record: Path
) -> dict[str, float]:
    """Each item in its own request: accuracy, share answered on the edge, the server's $ per
    1k items (its x-frugal-cost-usd, from the record) and the mean time per item."""
    started = time.perf_counter()
    answers = [cascade.predict(np.asarray(items[i : i + 1]) if not isinstance(items[i], str)
                               else [items[i]])[0] for i in range(len(items))]  # fmt: skip
    wall = time.perf_counter() - started
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    right = [a.value == t for a, t in zip(answers, truth, strict=True)]
    return {
        "accuracy": float(np.mean(right)),
        "edge_share": sum(e["edge"] for e in entries) / len(items),
        "server_usd_per_1k": 1000 * sum(e["server_usd"] for e in entries) / len(items),
        "mean_ms": 1000 * wall / len(items),
    }
