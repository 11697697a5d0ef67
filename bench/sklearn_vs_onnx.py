"""W1's model called in-process: scikit-learn's ``predict_proba`` against the same estimator
converted to ONNX by frugal, per batch size, and whether they agree.

    python bench/sklearn_vs_onnx.py --sizes 1,8,32,64 --calls 3000

Why: on a small model scikit-learn's per-call input checks (array conversion, dataframe
detection, feature-name and fitted-state checks) cost far more than its arithmetic, and they run
again on rows frugal's schema already checked. ONNX Runtime answers the same model from the
graph alone. This prints microseconds a call for each, one thread (and for frugal's two runtimes
around them: rows stacked, model called, answers built, as a slot thread runs a batch), and the
largest difference between their probabilities over all 1,797 digits (labels must agree).
run.py's ``frugal-onnx`` server measures what the difference is worth a request end to end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    """Median of five timed rounds of ``calls // 5`` calls, after a warm-up."""
    for _ in range(min(200, calls)):
        call()
    rounds = []
    n = max(1, calls // 5)
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            call()
        rounds.append(1e6 * (time.perf_counter() - start) / n)
    return sorted(rounds)[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1,8,32,64", help="batch sizes, comma-separated")
    p.add_argument("--calls", type=int, default=3000, help="calls timed per size and runtime")
    args = p.parse_args(argv)
    import models
    import numpy as np
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    from frugal.config import load_config
    from frugal.runtimes.loader import load_model

    models.ensure_w1_onnx()
    estimator = models.load_w1().estimator
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # frugal's default
    session = ort.InferenceSession(
        str(models.W1_ONNX_PATH), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    digits = load_digits().data.astype(np.float32)  # FP32, as frugal decodes W1's rows
    labels, probabilities = session.run(None, {name: digits})
    ours = estimator.predict_proba(digits)
    agree = bool((estimator.classes_[ours.argmax(axis=1)] == labels).all())
    out: dict[str, Any] = {
        "rows": len(digits),
        "labels_agree": agree,
        "max_probability_diff": float(np.abs(ours - probabilities).max()),
        "us_per_call": {},
    }
    # frugal's runtimes as the slot thread calls them: the rows stacked, the model, the answers
    runtimes = {
        kind: load_model(load_config(BENCH / "configs" / f"{config}.yaml").models[0])
        for kind, config in (("sklearn", "w1"), ("onnx", "w1-onnx"))
    }
    for size in (int(s) for s in args.sizes.split(",")):
        x = digits[:size]
        rows = list(x)
        calls = {
            "sklearn": partial(estimator.predict_proba, x),
            "onnx": partial(session.run, None, {name: x}),
            "frugal_sklearn_runtime": partial(runtimes["sklearn"].predict_batch, rows),
            "frugal_onnx_runtime": partial(runtimes["onnx"].predict_batch, rows),
        }
        timed = {kind: round(per_call_us(call, args.calls), 1) for kind, call in calls.items()}
        out["us_per_call"][size] = timed
    print(json.dumps(out, indent=1))
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
