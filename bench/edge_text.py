"""A text edge bundle (docs/edge.md#text): a head over all-MiniLM-L6-v2 embeddings on the device,
the server's stronger text model for the rest.

Trains both heads on templated FAQ questions (tests/edge/test_edge_text.py: the edge one on one
example a question, the server's on six), exports the edge head with `--text-encoder minilm`
(int8 encoder), serves the server's text model, and answers 90 held-out questions one request
each: the bundle alone (p50 time per sentence, agreement with the fp32 pipeline) and the hybrid
cascade at --threshold.

    python bench/edge_text.py [--threshold 0.85] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import joblib
import numpy as np
import yaml
from edge_runs import frugal_server, hybrid_run

from frugal.edge import EdgeCascade, EdgeModel
from frugal.runtimes import sha256_of
from frugal.runtimes.minilm import MiniLMEmbedder
from tests.edge.test_edge_text import labeled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.85)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    work = Path(tempfile.mkdtemp(prefix="edge-text-"))
    embedder = MiniLMEmbedder()
    paths = {}
    for name, (seed, count, c) in {"edge": (1, 1, 5.0), "server": (2, 6, 10.0)}.items():
        texts, labels = labeled(seed, count)
        head = LogisticRegression(C=c, max_iter=1000).fit(embedder.embed(texts), labels)
        paths[name] = work / f"{name}.joblib"
        joblib.dump(head, paths[name])
    held, truth = labeled(9, 6)
    config = {
        "instance": {"type": "c7i.large"},
        "models": [
            {"name": "faq-head", "runtime": "sklearn", "path": str(paths["edge"]),
             "sha256": sha256_of(paths["edge"]),
             "inputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]},
            {"name": "faq", "runtime": "python",
             "factory": "tests.edge.test_edge_text:make_text_classifier",
             "options": {"head": str(paths["server"])},
             "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}]},
        ],
        "endpoints": [{"name": "faq", "model": "faq"}],
        "ledger": {"path": str(work / "ledger.db")},
    }  # fmt: skip
    (work / "frugal.yaml").write_text(yaml.safe_dump(config))
    bundle = work / "bundle"
    subprocess.run([sys.executable, "-m", "frugal", "export", "faq-head", "--edge", "-o",
                    str(bundle), "--config", str(work / "frugal.yaml"), "--text-encoder",
                    "minilm", "--threshold", str(args.threshold)], check=True)  # fmt: skip
    edge = EdgeModel(bundle)
    times, labels = [], []
    for text in held:
        started = time.perf_counter()
        labels += edge.predict([text])[0]
        times.append(time.perf_counter() - started)
    fp32 = joblib.load(paths["edge"]).predict(embedder.embed(held))
    results: dict[str, object] = {
        "bundle_bytes": {p.name: p.stat().st_size for p in sorted(bundle.iterdir())},
        "edge_alone": {
            "accuracy": float(np.mean(np.asarray(labels) == np.asarray(truth))),
            "agreement_with_fp32_pipeline": float(np.mean(np.asarray(labels) == fp32)),
            "p50_ms_per_sentence": 1000 * statistics.median(times),
        },
    }
    root = Path(__file__).resolve().parent.parent
    with frugal_server(work / "frugal.yaml", cwd=root) as url:
        for label, threshold in (("server alone", 1.01), (f"hybrid @ {args.threshold}", None)):
            record = work / f"record-{threshold}.jsonl"
            cascade = EdgeCascade(bundle, url, "faq", threshold=threshold, record=record)
            results[label] = hybrid_run(cascade, held, truth, record)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
