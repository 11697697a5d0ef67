"""The hybrid edge -> server cascade on digits (docs/edge.md): what the edge answers, at what
accuracy and cost, against the server alone.

Trains a small MLP (the edge) and an RBF SVC (the server) on the first 1,200 digits, exports the
MLP with `frugal export --edge` (int8), serves the SVC with `frugal serve`, then answers the 597
held-out digits one request per item three ways: the edge bundle alone, the server alone, and
EdgeCascade at each --threshold. Prints a table; --json writes it.

    python bench/edge_hybrid.py [--thresholds 0.9,0.99] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import yaml
from edge_runs import frugal_server, hybrid_run
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from frugal.edge import EdgeCascade, EdgeModel

INPUTS = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.9,0.99,0.999")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    work = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    small = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=2000, random_state=0))
    small.fit(x[:1200], y[:1200])
    large = SVC(probability=True, random_state=0).fit(x[:1200], y[:1200])
    models = []
    for name, model in (("small", small), ("large", large)):
        path = work / f"{name}.joblib"
        joblib.dump(model, path)
        models.append({"name": name, "runtime": "sklearn", "path": str(path),
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                       "inputs": INPUTS})  # fmt: skip
    config = {"instance": {"type": "c7i.large"}, "models": models,
              "endpoints": [{"name": "digits", "model": "large"}],
              "ledger": {"path": str(work / "ledger.db")}}  # fmt: skip
    (work / "frugal.yaml").write_text(yaml.safe_dump(config))
    bundle = work / "bundle"
    subprocess.run([sys.executable, "-m", "frugal", "export", "small", "--edge", "-o", str(bundle),
                    "--config", str(work / "frugal.yaml")], check=True)  # fmt: skip
    held_x, held_y = x[1200:], y[1200:]
    edge = EdgeModel(bundle)
    times = []
    labels = []
    for row in held_x:
        started = time.perf_counter()
        labels += edge.predict(row[None, :])[0]
        times.append(time.perf_counter() - started)
    with frugal_server(work / "frugal.yaml") as url:
        results = {
            "bundle_bytes": {p.name: p.stat().st_size for p in sorted(bundle.iterdir())},
            "edge_alone": {"accuracy": float(np.mean(np.asarray(labels) == held_y)),
                           "p50_ms": 1000 * statistics.median(times),
                           "agreement_with_fp32": float(np.mean(
                               np.asarray(labels) == small.predict(held_x)))},
        }  # fmt: skip
        runs = {"server alone": 1.01}
        runs |= {f"hybrid @ {t}": float(t) for t in args.thresholds.split(",")}
        for label, threshold in runs.items():
            record = work / f"record-{threshold}.jsonl"
            cascade = EdgeCascade(bundle, url, "digits", threshold=threshold, record=record)
            results[label] = hybrid_run(cascade, held_x, held_y, record)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
