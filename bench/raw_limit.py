"""The raw limit: the model called in a loop in this process, no HTTP, no queue, no server.

    python bench/raw_limit.py --workload w1 --seconds 3
    python bench/raw_limit.py --workload w2 --seconds 3          # fixed and varied sentences
    python bench/raw_limit.py --workload w2 --seconds 3 --json   # one JSON line per case

Items/s at batch 1 and at batch 8/16/32/64 is the ceiling any server can reach on one worker
thread. For W2 the sentences are either all the fixed one (16 tokens) or varied corpus
sentences (4..100 words; each batch padded to its longest item). ``sorted-from-K`` imitates a
size-aware batcher with K items waiting: it computes each item's ``item_size`` (token count, its
cost included in the timing), sorts the K items by size and runs them as batches of 16; the
batches are run in a seeded random order until the time is up, so a short run is not biased
towards the cheap short batches.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

BATCHES = (1, 8, 16, 32, 64)


def timed(step: Callable[[], int], seconds: float) -> tuple[float, int, float]:
    """Run ``step`` (returns items done) after one warm-up call until ``seconds`` pass;
    return (items/s, items, mean seconds per step)."""
    step()
    items = calls = 0
    t0 = time.perf_counter()
    while True:
        items += step()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return items / elapsed, items, elapsed / calls


def cycle_batches(pool: list, b: int) -> Callable[[], list]:
    pos = [0]

    def nxt() -> list:
        i = pos[0]
        if i + b > len(pool):
            i = 0
        pos[0] = i + b
        return pool[i : i + b]

    return nxt


def run_batches(model, pool: list, b: int, seconds: float) -> tuple[float, int, float]:
    nxt = cycle_batches(pool, b)

    def step() -> int:
        batch = nxt()
        model.predict_batch(batch)
        return len(batch)

    return timed(step, seconds)


def run_sorted(
    model, pool: list[str], waiting: int, b: int, seconds: float, seed: int = 0
) -> tuple[float, int, float]:
    """Take ``waiting`` items, size them, sort, cut into batches of ``b``; run those batches in a
    random order, then take the next ``waiting`` items."""
    rng = random.Random(seed)
    nxt = cycle_batches(pool, waiting)
    plan: list[list[str]] = []

    def step() -> int:
        if not plan:
            group = nxt()
            group = sorted(group, key=model.item_size)  # item_size cost counts: the batcher pays it
            chunks = [group[i : i + b] for i in range(0, len(group), b)]
            rng.shuffle(chunks)
            plan.extend(chunks)
        batch = plan.pop()
        model.predict_batch(batch)
        return len(batch)

    return timed(step, seconds)


def cases(workload: str, seconds: float, backend: str, threads: int):
    """Yield result dicts, one per case, as they are measured."""
    import corpus
    import models

    if workload == "w1":
        import numpy as np

        model = models.load_w1()
        pool = [np.asarray(r, dtype=np.float32) for r in models.w1_rows(1797)]
        for b in BATCHES:
            rate, n, per = run_batches(model, pool, b, seconds)
            yield {
                "workload": "w1",
                "case": "digits rows",
                "batch": b,
                "items_per_s": rate,
                "ms_per_batch": per * 1000,
                "items": n,
            }
        return
    model = models.load_w2(backend=backend, threads=threads)
    label = f"{backend}/{threads}t"
    fixed = corpus.fixed(64)
    varied = corpus.sentences(4096, seed=2)
    for b in BATCHES:
        rate, n, per = run_batches(model, fixed, b, seconds)
        yield {
            "workload": "w2",
            "case": f"fixed sentence ({label})",
            "batch": b,
            "items_per_s": rate,
            "ms_per_batch": per * 1000,
            "items": n,
        }
    for b in BATCHES:
        rate, n, per = run_batches(model, varied, b, seconds)
        yield {
            "workload": "w2-varied",
            "case": f"varied, arrival order ({label})",
            "batch": b,
            "items_per_s": rate,
            "ms_per_batch": per * 1000,
            "items": n,
        }
    for waiting in (64, 1024):
        rate, n, per = run_sorted(model, varied, waiting, 16, seconds)
        yield {
            "workload": "w2-varied",
            "case": f"varied, sorted from {waiting} waiting ({label})",
            "batch": 16,
            "items_per_s": rate,
            "ms_per_batch": per * 1000,
            "items": n,
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workload",
        choices=["w1", "w2", "w2-varied"],
        required=True,
        help="w2 and w2-varied both run the fixed and the varied cases",
    )
    p.add_argument("--seconds", type=float, default=3.0, help="per case")
    p.add_argument("--backend", default="onnx", help="W2: onnx | torch")
    p.add_argument("--threads", type=int, default=1, help="W2: intra-op threads")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line instead of a table"
    )
    args = p.parse_args(argv)
    if not args.json:
        print("| workload | case | batch | items/s | ms/batch |")
        print("|---|---|---:|---:|---:|")
    for r in cases(args.workload, args.seconds, args.backend, args.threads):
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"| {r['workload']} | {r['case']} | {r['batch']} | {r['items_per_s']:.1f} | "
                f"{r['ms_per_batch']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
