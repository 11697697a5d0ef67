"""Which MiniLM backend is faster here: onnx vs torch, threads 1 and 2, batch 1 and batch 32.

    python bench/raw_minilm.py --seconds 3                  # all four combinations
    python bench/raw_minilm.py --backends onnx --threads 1  # just one

Each combination runs in its own subprocess (torch and ONNX Runtime thread settings are
per-process). Items are the fixed sentence (16 tokens) and varied corpus sentences (4..100
words, batch padded to its longest item); also prints the cost of one ``item_size`` call.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def measure(fn, seconds: float) -> tuple[float, int]:
    """Call fn() until ``seconds`` pass (after one warm-up call); return (calls/s, calls)."""
    fn()
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        fn()
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0), n


def child(backend: str, threads: int, seconds: float, batches: list[int]) -> dict:
    import corpus
    import models

    m = models.load_w2(backend=backend, threads=threads)
    varied = corpus.sentences(1024, seed=1)
    out: dict = {"backend": backend, "threads": threads}
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for b in batches:
        fixed_batch = corpus.fixed(b)
        rate, _ = measure(lambda fixed_batch=fixed_batch: m.predict_batch(fixed_batch), seconds)
        out[f"fixed_b{b}"] = rate * b

        def varied_call(b: int = b, pos: list[int] = [0]) -> None:  # noqa: B006 (a cursor)
            i = pos[0]
            pos[0] = (i + b) % (len(varied) - b)
            m.predict_batch(varied[i : i + b])

        rate, _ = measure(varied_call, seconds)
        out[f"varied_b{b}"] = rate * b
    out["cpu_per_wall"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    # item_size: the batcher calls it on the event loop for every item
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        m.item_size(varied[i % len(varied)])
    out["item_size_us_varied"] = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        m.item_size(corpus.FIXED_SENTENCE)
    out["item_size_us_fixed"] = (time.perf_counter() - t0) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--backends", default="onnx,torch")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        print(json.dumps(child(args.backends, int(args.threads), args.seconds, batches)))
        return 0
    rows = []
    for backend in args.backends.split(","):
        for threads in args.threads.split(","):
            env = dict(os.environ, HF_HUB_OFFLINE="1")
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--backends",
                    backend,
                    "--threads",
                    threads,
                    "--seconds",
                    str(args.seconds),
                    "--batches",
                    args.batches,
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if r.returncode != 0:
                print(f"{backend} threads={threads} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    cols = [f"{kind}_b{b}" for b in batches for kind in ("fixed", "varied")]
    print(
        "| backend | threads | "
        + " | ".join(f"{c} items/s" for c in cols)
        + " | cpu/wall | item_size µs (varied / fixed) |"
    )
    print("|---" * (len(cols) + 4) + "|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['threads']} | "
            + " | ".join(f"{r[c]:.1f}" for c in cols)
            + f" | {r['cpu_per_wall']:.2f} | {r['item_size_us_varied']:.1f}"
            + f" / {r['item_size_us_fixed']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
