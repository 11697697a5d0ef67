"""The batcher's CPU per item with and without ``server.priority``, against a base revision.

Three batchers in one process, run in turns on the same trivial model (it returns its items, so
what is measured is the batcher and the event loop): the base revision's ``batcher.py`` (read
with ``git show``), this tree's with priority off, and this tree's with two tiers (20% of items
premium). Each turn submits --items single-item requests, --concurrency at a time, and reports
process CPU per item; the median and the minimum over --rounds turns are printed (the minimum is
the least disturbed by other work on a shared machine).

    python bench/priority_overhead.py                 # base: main
    python bench/priority_overhead.py --base HEAD~5 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Echo:
    def __init__(self) -> None:
        from frugal.types import ModelRef

        self.ref = ModelRef("echo", "1")

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        from frugal.types import Prediction

        return [Prediction(i) for i in items]


def load_base(rev: str, folder: Path) -> Any:
    source = subprocess.run(["git", "show", f"{rev}:frugal/serving/batcher.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = folder / "base_batcher.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("base_batcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["base_batcher"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


async def turn(make: Callable[[], Any], rank: Callable[[int], int] | None, items: int,
               concurrency: int) -> float:  # fmt: skip
    batcher = make()
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            if rank is None:
                await batcher.submit([i], float("inf")).wait()
            else:
                await batcher.submit([i], float("inf"), rank(i)).wait()

    start = time.process_time()
    await asyncio.gather(*(one(i) for i in range(items)))
    return (time.process_time() - start) / items * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--base", default="main", help="git revision whose batcher.py is the base")
    p.add_argument("--items", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    from frugal.accounting import Pricer
    from frugal.config import BatchingConfig, PriorityConfig
    from frugal.serving.batcher import Batcher
    from frugal.serving.priority import TierOrder

    pool = ThreadPoolExecutor(1)
    pricer = Pricer(price_usd_per_hour=1.0, slots=1)
    config = BatchingConfig(max_batch_size=args.max_batch_size)
    order = TierOrder(PriorityConfig(tiers=["premium", "free"]))
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(args.base, Path(tmp))
    variants: dict[str, tuple[Callable[[], Any], Callable[[int], int] | None]] = {
        f"base ({args.base})": (
            lambda: base.Batcher(Echo(), config, slot_pool=pool, pricer=pricer), None),
        "priority off": (lambda: Batcher(Echo(), config, slot_pool=pool, pricer=pricer), None),
        "priority on, 20% premium": (
            lambda: Batcher(Echo(), config, slot_pool=pool, pricer=pricer, tiers=order),
            lambda i: 0 if i % 5 == 0 else 1),
    }  # fmt: skip
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (make, rank) in variants.items():
            runs[name].append(asyncio.run(turn(make, rank, args.items, args.concurrency)))
    for name, values in runs.items():
        print(f"{name}: median {statistics.median(values):.1f} us, min {min(values):.1f} us "
              "of process CPU per item")  # fmt: skip
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
