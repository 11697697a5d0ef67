"""Does the drift check catch a cascade whose traffic drifted? Serve it, drift it, feed labels.

    python bench/drift_check.py [--clean 2000] [--shifted 3000]

A weak small tier (logistic regression, 5 iterations) before a 5-nearest-neighbours large tier,
both trained on 900 shuffled digits; the other 897 are the traffic. The gate starts at the
threshold calibrate chooses on the clean traffic (--max-drop 0.01 at 90% confidence). A real
`frugal serve` answers --clean requests of clean digits, then --shifted requests of the same
digits moved one pixel to the right (a camera knocked out of line): the small model stays sure
of itself far more often than it is right. Each answer's true label is fed back at once
(`POST /v1/endpoints/digits/feedback`); the drift check runs with max_drop 0.01, confidence
0.9, a 1,000-item window and a 0.05 step.

Printed every 250 requests: the gate's threshold (from /metrics) and, computed offline with the
same models on the phase's whole pool, the cascade's true accuracy drop against the large tier at
that threshold and its escalation rate. Runs on the CPU; small models.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx
import joblib
import numpy as np
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from frugal.optimize.server_process import running_server
from frugal.routing.confidence import Target, choose
from frugal.routing.sweep import TierRun, grid, simulate
from frugal.runtimes import sha256_of

DRIFT = {"max_drop": 0.01, "confidence": 0.9, "window": 1000, "min_items": 300, "step": 0.05,
         "limit": 0.999}  # fmt: skip


def tiers_on(small: object, large: object, x: np.ndarray, y: np.ndarray) -> list[TierRun]:
    proba = small.predict_proba(x)  # type: ignore[attr-defined]
    n = len(y)
    none = np.zeros(n, dtype=bool)
    return [
        TierRun("small", ">=", proba.max(axis=1), proba.argmax(axis=1) == y, none, np.ones(n)),
        TierRun("large", "", np.full(n, np.nan), large.predict(x) == y, none, np.full(n, 5.0)),  # type: ignore[attr-defined]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=2000)
    parser.add_argument("--shifted", type=int, default=3000)
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32) / 16.0, y[order]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = LogisticRegression(max_iter=5).fit(x[:900], y[:900])
    large = KNeighborsClassifier(5).fit(x[:900], y[:900])
    pool_x, pool_y = x[900:], y[900:]
    shifted_x = np.roll(pool_x.reshape(-1, 8, 8), 1, axis=2).reshape(-1, 64)
    clean = tiers_on(small, large, pool_x, pool_y)
    shifted = tiers_on(small, large, shifted_x, pool_y)
    rows = np.arange(len(pool_y))
    points = [simulate(clean, t, rows) for t in grid(clean, rows)]
    start = choose(points, [">="], Target("max_drop", 0.01, 0.9)).chosen
    assert start is not None
    threshold0 = start.thresholds[0]

    def truth(tiers: list[TierRun], threshold: float) -> tuple[float, float]:
        o = simulate(tiers, (threshold,), rows)
        return o.drop, o.escalation_rate

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        joblib.dump(small, folder / "small.joblib")
        joblib.dump(large, folder / "large.joblib")
        inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 64]}]
        config = {
            "instance": {"type": "c7i.large"},
            "models": [{"name": n, "runtime": "sklearn", "path": f"{n}.joblib",
                        "sha256": sha256_of(folder / f"{n}.joblib"), "inputs": inputs}
                       for n in ("small", "large")],
            "endpoints": [{"name": "digits", "route": {
                "cascade": [{"model": "small", "accept": {"confidence": f">= {threshold0}"}},
                            {"model": "large"}], "drift": DRIFT}}],
            "ledger": {"path": "ledger.db"},
        }  # fmt: skip
        (folder / "frugal.yaml").write_text(yaml.safe_dump(config))
        print(f"start: calibrated threshold {threshold0:g} (clean: true drop "
              f"{100 * truth(clean, threshold0)[0]:.2f} pt)")  # fmt: skip
        print("| requests | phase | threshold | true drop at it (phase's pool) | escalated |")
        print("| ---: | --- | ---: | ---: | ---: |")
        started = time.time()
        with running_server(folder / "frugal.yaml") as (url, _), httpx.Client() as client:
            total = args.clean + args.shifted
            picks = np.random.default_rng(2).integers(0, len(pool_y), total)
            for i, k in enumerate(picks):
                phase_x, phase = (pool_x, "clean") if i < args.clean else (shifted_x, "shifted")
                request_id = f"r{i}"
                r = client.post(f"{url}/v1/endpoints/digits/predict",
                                json={"instances": [phase_x[k].tolist()]},
                                headers={"x-request-id": request_id})  # fmt: skip
                r.raise_for_status()
                client.post(f"{url}/v1/endpoints/digits/feedback",
                            json={"request_id": request_id, "label": int(pool_y[k])},
                            ).raise_for_status()  # fmt: skip
                if (i + 1) % 250 == 0:
                    metrics = client.get(f"{url}/metrics").text
                    line = next(m for m in metrics.splitlines()
                                if m.startswith("frugal_cascade_gate_threshold{"))  # fmt: skip
                    threshold = float(line.split()[-1])
                    drop, escalated = truth(clean if phase == "clean" else shifted, threshold)
                    print(f"| {i + 1:,} | {phase} | {threshold:g} | {100 * drop:.2f} pt | "
                          f"{100 * escalated:.0f}% |")  # fmt: skip
        print(f"\n{time.time() - started:.0f} s; shifted traffic at the start threshold: true "
              f"drop {100 * truth(shifted, threshold0)[0]:.2f} pt")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
