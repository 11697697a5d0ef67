"""Which cosine threshold should the semantic cache use? Hit and false-hit rates per threshold.

    python bench/semantic_threshold.py                      # Markdown tables on stdout
    python bench/semantic_threshold.py --plot rates.png     # and both rates vs threshold

Embeds both sides of every pair in ``frugal.cache.paraphrases`` with all-MiniLM-L6-v2 (the ONNX
export under ``~/.cache/frugal``, made on first use, or ``--backend torch``). The hit rate is the
share of same-meaning pairs whose cosine similarity >= threshold: paraphrases the semantic cache
would serve. The false-hit rate is the share of different-meaning pairs >= threshold: wrong
answers it would serve. The recommendation is the lowest threshold whose false-hit rate is at
most ``--max-false-hit`` (2% by default), taken from the grid or, if none there qualifies, from a
finer scan.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in a package; never download

from frugal.cache.paraphrases import GROUPS, PARAPHRASES, Pair
from frugal.cache.semantic import DEFAULT_THRESHOLD

THRESHOLDS = (0.80, 0.85, 0.90, 0.92, 0.95, 0.97, 0.99)
SCAN = np.round(np.arange(0.800, 1.0005, 0.001), 3)


def similarities(embed: Callable[[list[str]], np.ndarray], pairs: Sequence[Pair]) -> np.ndarray:
    """Cosine similarity of each pair's two texts."""
    a = _unit(embed([p[0] for p in pairs]))
    b = _unit(embed([p[1] for p in pairs]))
    return np.asarray((a * b).sum(axis=1), dtype=np.float64)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def rate(sims: np.ndarray, threshold: float) -> float:
    """Share of ``sims`` at or above ``threshold``."""
    return float((sims >= threshold).mean()) if len(sims) else 0.0


def lowest_threshold(
    different: np.ndarray, max_false_hit: float, grid: Sequence[float]
) -> float | None:
    """The lowest threshold in ``grid`` whose false-hit rate is at most ``max_false_hit``."""
    for t in sorted(grid):
        if rate(different, t) <= max_false_hit + 1e-12:
            return float(t)
    return None


def report(sims: np.ndarray, same: np.ndarray, max_false_hit: float) -> str:
    hits, false_hits = sims[same], sims[~same]
    lines = [
        f"{len(hits)} same-meaning pairs, {len(false_hits)} different-meaning pairs "
        "(frugal/cache/paraphrases.py), all-MiniLM-L6-v2, cosine similarity.",
        "",
        "| threshold | hit rate | hits | false-hit rate | false hits |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t in sorted({*THRESHOLDS, DEFAULT_THRESHOLD}):
        lines.append(
            f"| {t:.3g} | {rate(hits, t):.1%} | {int((hits >= t).sum())}/{len(hits)} "
            f"| {rate(false_hits, t):.1%} | {int((false_hits >= t).sum())}/{len(false_hits)} |"
        )
    lines += ["", "Share of each kind of pair at or above the threshold:", ""]
    lines.append("| pairs | n | " + " | ".join(f"{t:.3g}" for t in THRESHOLDS) + " |")
    lines.append("|---|---:|" + "---:|" * len(THRESHOLDS))
    start = 0
    for name, group in GROUPS.items():
        part = sims[start : start + len(group)]
        start += len(group)
        cells = " | ".join(f"{rate(part, t):.0%}" for t in THRESHOLDS)
        lines.append(f"| {name} | {len(group)} | {cells} |")
    lines += ["", "Different-meaning pairs scoring highest:", ""]
    for i in np.argsort(-sims):
        if not same[i] and sims[i] >= 0.9:
            a, b, _ = PARAPHRASES[i]
            lines.append(f"- {sims[i]:.4f}  {a!r} / {b!r}")
    in_grid = lowest_threshold(false_hits, max_false_hit, THRESHOLDS)
    scanned = lowest_threshold(false_hits, max_false_hit, SCAN.tolist())
    zero = lowest_threshold(false_hits, 0.0, SCAN.tolist())
    lines.append("")
    if in_grid is not None:
        lines.append(f"Lowest grid threshold with false-hit rate <= {max_false_hit:.0%}: {in_grid}")
    else:
        lines.append(f"No grid threshold keeps the false-hit rate <= {max_false_hit:.0%}.")
    for label, t in ((f"<= {max_false_hit:.0%}", scanned), ("0", zero)):
        if t is not None:
            lines.append(
                f"Lowest threshold (0.001 steps) with false-hit rate {label}: {t} "
                f"(hit rate {rate(hits, t):.1%}, false-hit rate {rate(false_hits, t):.1%})"
            )
    default = DEFAULT_THRESHOLD
    lines.append(
        f"frugal.cache.semantic.DEFAULT_THRESHOLD = {default}: hit rate "
        f"{rate(hits, default):.1%}, false-hit rate {rate(false_hits, default):.1%}"
    )
    return "\n".join(lines)


def plot(sims: np.ndarray, same: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = SCAN[SCAN <= 0.999]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [rate(sims[same], t) for t in xs], label="hit rate (same meaning)")
    ax.plot(xs, [rate(sims[~same], t) for t in xs], label="false-hit rate (different meaning)")
    for t in THRESHOLDS:
        ax.axvline(t, color="0.85", linewidth=0.8, zorder=0)
    ax.axvline(DEFAULT_THRESHOLD, color="0.3", linestyle="--", linewidth=1, label="default")
    ax.set_xlabel("cosine similarity threshold")
    ax.set_ylabel("share of pairs >= threshold")
    ax.set_title("Semantic cache, all-MiniLM-L6-v2: hits vs false hits")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PNG", help="also plot both rates vs threshold")
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--max-false-hit", type=float, default=0.02)
    args = parser.parse_args(argv)
    from frugal.runtimes.minilm import make_model

    embedder = make_model(backend=args.backend)
    sims = similarities(embedder.embed, PARAPHRASES)
    same = np.array([p[2] for p in PARAPHRASES])
    print(report(sims, same, args.max_false_hit))
    if args.plot:
        plot(sims, same, args.plot)
        print(f"\nplot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
