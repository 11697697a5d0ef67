"""Sentence embeddings with all-MiniLM-L6-v2, as a frugal ``python`` runtime model.

    models:
      - name: minilm
        runtime: python
        factory: embedder:make_model
        path: ../../examples/minilm          # this directory, put on sys.path
        options: {backend: onnx, threads: 1}

The implementation lives in ``frugal.runtimes.minilm`` (the semantic cache embeds with it too);
this module keeps the ``embedder:make_model`` factory path working. See that module for the
backends (``onnx``, ``torch``), ``threads`` and the ONNX export cached under ``~/.cache/frugal``.
"""

from __future__ import annotations

from frugal.runtimes.minilm import (
    DIM,
    ONNX_CACHE_NAME,
    MiniLMEmbedder,
    cache_dir,
    export_onnx,
    make_model,
    model_dir,
    onnx_path,
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
