"""What the policy controller costs the server: per batch (feeding its latency window) and per
tick (closing the windows, deciding every knob), measured on a real engine.

    python bench/controller_overhead.py

The engine serves a digits LogisticRegression (trained here on scikit-learn's bundled data) with
a controller of all three knobs (docs/controller.md). Each knob's window is filled as a busy
server would fill it: 30 ticks of 200 batches of 32 items, spread over the latency histogram's
buckets, at a p99 inside the SLO band so every tick reads the whole
window (the dearest case). Prints microseconds per batch observed and per tick, best of 5 runs.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import timeit
from pathlib import Path

import joblib
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from frugal.config import parse_config
from frugal.runtimes import sha256_of
from frugal.serving import build_engine
from frugal.types import BatchStats


def config(folder: Path) -> dict[str, object]:
    x, y = load_digits(return_X_y=True)
    model = folder / "digits-lr.joblib"
    joblib.dump(LogisticRegression(max_iter=2000).fit(x, y), model)
    return {
        "instance": {"price_usd_per_hour": 0.0896, "slots": 2},
        "models": [{"name": "digits", "runtime": "sklearn", "path": str(model),
                    "sha256": sha256_of(model), "batching": {"workers": 2},
                    "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]}],
        "endpoints": [{"name": "digits", "cache": {"ttl_s": 60}, "route": {
            "model": "digits", "rules": [{"name": "busy", "when": {"deadline_ms": "> 0"},
                                          "model": "digits", "degraded": True}]}}],
        "ledger": {"enabled": False},
        "controller": {
            "batching": [{"model": "digits", "slo_p99_ms": 300,
                          "max_wait_ms": {"min": 1, "max": 20}}],
            "cache": [{"endpoint": "digits", "ttl_s": {"min": 10, "max": 600},
                       "staleness_budget_s": 300}],
            "degrade": [{"endpoint": "digits", "rule": "busy", "on_above": 64,
                         "off_below": 8}],
        },
    }  # fmt: skip


def batch(rng: random.Random) -> BatchStats:
    return BatchStats(
        model="digits:1", size=32, reason="full", started_at=time.time(),
        busy_s=rng.uniform(0.002, 0.02), cost_per_item_usd=1e-8,
        queue_s=tuple(rng.uniform(0, 0.2) for _ in range(32)), failed=0,
    )  # fmt: skip


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = build_engine(parse_config(config(Path(folder))))
        controller = engine.controller
        assert controller is not None
        rng = random.Random(0)
        batches = [batch(rng) for _ in range(200)]
        window = controller.latencies
        for _ in range(30):  # a full window: 30 ticks of a busy server
            for stats in batches:
                window.observe(stats)
            controller.tick()
        per_batch_s = min(
            timeit.repeat(lambda: [window.observe(s) for s in batches], number=10, repeat=5)
        ) / (10 * len(batches))  # fmt: skip
        per_tick_s = min(timeit.repeat(controller.tick, number=100, repeat=5)) / 100
        readings = controller.knobs[0].readings
        moved = len(controller.changes)
        await engine.drain()
    print(f"max_wait_ms reading at the last tick: {readings} ({moved} knob changes made)")
    print(f"per batch of 32 items observed: {1e6 * per_batch_s:.1f} us")
    print(f"per tick (3 knobs, 30-slot window): {1e6 * per_tick_s:.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
