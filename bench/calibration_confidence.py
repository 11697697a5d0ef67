"""What `frugal calibrate --confidence` buys: thresholds, served drops and $ over many draws.

    python bench/calibration_confidence.py [--draws 200] [--out bench/results/...json]

Two cascades on data frugal never trained on, each through frugal's own measuring
(``frugal.optimize.tier_runs.record_tiers``: every tier on every item, priced from its busy
time on c7i.large) and its own choice (``choose_thresholds``):

- **digits**: logistic regression -> RBF SVC, trained on 600 shuffled digits; each draw takes
  400 (or 900) of the other 1,197 to calibrate and serves the rest (a finite pool: a draw whose
  calibration part was lucky leaves the served part the unlucky items, so over-limit shares
  here are pessimistic).
- **make_classification** (seed 7, 20 features, 4 informative): logistic regression -> random
  forest, trained on 2,000 rows; each draw calibrates on 400 (or 2,000) of a 4,000-row pool and
  is served on 20,000 independent rows, the same for every draw.

Each draw (a seed of the shuffle) calibrates at --max-drop 0.005 and each confidence (the same
sweep and fixed-sequence choice as `frugal calibrate`), then serves the chosen thresholds.
Reported per confidence: the median threshold, the served drop against the last tier (mean,
and the share of draws over the limit), $ per 1k served against the last tier alone, and how
often nothing could be chosen. Runs on the CPU; the models are small.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from frugal.optimize.tier_runs import record_tiers
from frugal.routing.calibrate import resolve_cascade
from frugal.routing.confidence import Target, choose
from frugal.routing.sweep import grid, simulate
from frugal.runtimes import sha256_of

CONFIDENCES = (0.0, 0.5, 0.9, 0.95)
MAX_DROP = 0.005
SIZES = {"digits": (400, 900), "make_classification": (400, 2000)}  # calibration items per draw

CONFIG = """instance: {{type: c7i.large}}
models:
  - {{name: small, runtime: sklearn, path: small.joblib, sha256: {small},
     inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}],
     batching: {{max_batch_size: 64}}}}
  - {{name: large, runtime: sklearn, path: large.joblib, sha256: {large},
     inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}],
     batching: {{max_batch_size: 64}}}}
endpoints:
  - name: cascade
    route:
      cascade:
        - {{model: small, accept: {{confidence: ">= 0.9"}}}}
        - {{model: large}}
"""


def build(folder: Path, x: np.ndarray, y: np.ndarray, small: Any, large: Any, n_train: int) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        joblib.dump(small.fit(x[:n_train], y[:n_train]), folder / "small.joblib")
    joblib.dump(large.fit(x[:n_train], y[:n_train]), folder / "large.joblib")
    np.savez(folder / "data.npz", X=x[n_train:].astype(np.float32), y=y[n_train:])
    (folder / "frugal.yaml").write_text(
        CONFIG.format(
            small=sha256_of(folder / "small.joblib"),
            large=sha256_of(folder / "large.joblib"),
            features=x.shape[1],
        )
    )
    return folder


def cases(root: Path) -> dict[str, tuple[Path, int]]:
    """Each case's folder, and how many of its data rows are the calibration pool (the rest,
    if any, is an independent served set)."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    digits = root / "digits"
    digits.mkdir()
    build(digits, x[order] / 16.0, y[order], LogisticRegression(max_iter=200),
          SVC(gamma="scale"), 600)  # fmt: skip
    x, y = make_classification(n_samples=26_000, n_features=20, n_informative=4, random_state=7)
    mc = root / "make_classification"
    mc.mkdir()
    build(mc, x, y, LogisticRegression(max_iter=500),
          RandomForestClassifier(n_estimators=100, random_state=7), 2000)  # fmt: skip
    return {"digits": (digits, 1197), "make_classification": (mc, 4000)}


def measure(folder: Path, pool: int, draws: int, calibration_items: int) -> dict[str, Any]:
    cascade = resolve_cascade(folder / "frugal.yaml", "cascade")
    recording = record_tiers(cascade, folder / "data.npz", progress=False)
    tiers = recording.runs
    n = len(recording.labels)
    independent = np.arange(pool, n)  # served rows no draw calibrates on
    large = tiers[-1]
    out: dict[str, Any] = {
        "pool": pool, "served_items": int(independent.size) or pool - calibration_items,
        "calibration_items": calibration_items,
        "small_accuracy": float(tiers[0].correct[:pool].mean()),
        "large_accuracy": float(large.correct[:pool].mean()),
        "large_usd_per_1k": 1000 * float(large.cost_usd.mean()),
    }  # fmt: skip
    for confidence in CONFIDENCES:
        target = Target("max_drop", MAX_DROP, confidence)
        thresholds, drops, usd, none = [], [], [], 0
        for seed in range(draws):
            rows = np.random.default_rng(seed).permutation(pool)
            calib = rows[:calibration_items]
            served = independent if independent.size else rows[calibration_items:]
            points = [simulate(tiers, t, calib) for t in grid(tiers, calib)]
            chosen = choose(points, [tiers[0].op], target).chosen
            if chosen is None:
                none += 1  # nothing certified: the endpoint would serve the last tier alone
                continue
            outcome = simulate(tiers, chosen.thresholds, served)
            thresholds.append(chosen.thresholds[0])
            drops.append(outcome.drop)
            usd.append(outcome.usd_per_1k)
        d = np.array(drops)
        out[str(confidence)] = {
            "median_threshold": float(np.median(thresholds)) if thresholds else None,
            "mean_served_drop": float(d.mean()) if d.size else None,
            "p90_served_drop": float(np.quantile(d, 0.9)) if d.size else None,
            "share_over_limit": float((d > MAX_DROP).sum() / draws),
            "mean_usd_per_1k": float(np.mean(usd)) if usd else None,
            "none_chosen": none / draws,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            f"{name}, {size} calibration items": measure(folder, pool, args.draws, size)
            for name, (folder, pool) in cases(Path(tmp)).items()
            for size in SIZES[name]
        }
    for name, r in results.items():
        print(f"\n{name}: drawn from {r['pool']}, {r['served_items']} served per draw, "
              f"small {r['small_accuracy']:.4f}, large {r['large_accuracy']:.4f} "
              f"(${r['large_usd_per_1k']:.3g}/1k)")  # fmt: skip
        print("| confidence | median threshold | served drop, mean | draws over 0.005 | "
              "$/1k served (vs large) | nothing chosen |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        for c in CONFIDENCES:
            s = r[str(c)]
            usd = s["mean_usd_per_1k"]
            ratio = f"{usd:.3g} ({usd / r['large_usd_per_1k']:.0%})" if usd else "-"
            thr = "-" if s["median_threshold"] is None else f"{s['median_threshold']:g}"
            drop = "-" if s["mean_served_drop"] is None else f"{100 * s['mean_served_drop']:.2f} pt"
            print(f"| {c:g} | {thr} | {drop} | {s['share_over_limit']:.0%} | {ratio} | "
                  f"{s['none_chosen']:.0%} |")  # fmt: skip
    print(f"\n{time.time() - started:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
