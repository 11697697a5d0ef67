"""Pick the runtime module for a model config; heavy runtimes import only when used."""

from __future__ import annotations

import importlib

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes.base import Model

_EXTRA = {"onnx": "onnx", "torch": "torch"}


def load_model(config: ModelConfig) -> Model:
    """Verify and load one model version; raises ArtifactError naming the model and file."""
    if config.runtime == "openai":
        raise ArtifactError(
            f"model {config.key}: runtime openai is an upstream API, not a loadable model",
            hint="it is served by POST /v1/chat/completions and /v1/embeddings (docs/llm.md)",
        )
    if config.executor == "process":
        from frugal.runtimes.process import ProcessModel

        return ProcessModel(config)
    try:
        module = importlib.import_module(f"frugal.runtimes.{config.runtime}")
    except ImportError as exc:
        extra = _EXTRA.get(config.runtime, config.runtime)
        raise ArtifactError(
            f"model {config.key}: runtime {config.runtime} is not installed ({exc.name} missing)",
            hint=f"pip install 'frugal[{extra}]'",
        ) from exc
    model: Model = module.load(config)
    return model
