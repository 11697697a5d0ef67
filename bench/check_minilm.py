"""Check examples/minilm/embedder.py against sentence-transformers (cosine > 0.999), both backends.

.venv/bin/python bench/check_minilm.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "minilm"))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import embedder  # noqa: E402
import numpy as np  # noqa: E402


def main() -> int:
    from sentence_transformers import SentenceTransformer

    odd = ["Hi.", "", "Ünïcödé and emoji 🦊 test"]
    sentences = [corpus.FIXED_SENTENCE, *odd, *corpus.sentences(28, seed=7)]
    sentences.append(" ".join(["word"] * 300))  # longer than max_length: truncated by both
    st = SentenceTransformer(str(embedder.model_dir()), device="cpu")
    st.max_seq_length = 128
    ref = st.encode(sentences, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    worst_all = 1.0
    for backend in ("onnx", "torch"):
        m = embedder.make_model(max_length=128, threads=1, backend=backend)
        got_batch = np.asarray(m.predict_batch(sentences), dtype=np.float32)
        got_one = np.asarray([m.predict_batch([s])[0] for s in sentences], dtype=np.float32)
        for name, got in (("batched", got_batch), ("one-by-one", got_one)):
            assert got.shape == ref.shape, (got.shape, ref.shape)
            cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
            worst = float(cos.min())
            worst_all = min(worst_all, worst)
            norms = np.linalg.norm(got, axis=1)
            print(
                f"{backend:5s} {name:10s} min cosine vs sentence-transformers: {worst:.7f}"
                f"  norms {norms.min():.5f}..{norms.max():.5f}"
            )
    ok = worst_all > 0.999
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
