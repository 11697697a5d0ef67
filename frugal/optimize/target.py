"""Which model a toolkit verb measures: one model of a frugal.yaml, or a bare model file.

Either way the model is loaded through frugal's runtimes (``load_model(ModelConfig)``), so the
numbers a verb prints are the ones the server would see. A bare file gets the config the server
would need for it: its runtime from ``--runtime`` or its suffix, and its sha256 computed here.

An ONNX file with the signature of frugal's MiniLM export (inputs ``input_ids`` and
``attention_mask``, output ``embedding``) is a text model: it runs through
``frugal.runtimes.minilm`` (tokenizer included), as a ``python`` runtime model serves it.
"""

from __future__ import annotations

import os
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.config import ModelConfig, TensorSpec, load_config
from frugal.errors import ConfigError, InvalidInput, NotFound
from frugal.optimize.dataset import Dataset, load_dataset, synthesize_items
from frugal.runtimes.base import Model, sha256_of
from frugal.types import Item

SUFFIX_RUNTIMES = {
    ".onnx": "onnx",
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pt": "torch",
    ".pth": "torch",
    ".ts": "torch",
    ".pt2": "torch",
}
CONFIG_SUFFIXES = (".yaml", ".yml")
MINILM_FACTORY = "frugal.runtimes.minilm:make_model"
_MINILM_INPUTS = {"input_ids", "attention_mask"}
_TEXT_SPEC = TensorSpec(name="text", datatype="BYTES", shape=[-1])
# ONNX element types (as onnxruntime spells them) -> the v2 datatypes of TensorSpec.
ONNX_DATATYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


@dataclass(frozen=True, slots=True)
class Target:
    """A model version as a verb loads it, plus what a profile records about it."""

    config: ModelConfig
    source: Path  # what the command line named: a frugal.yaml or the model file
    artifact: Path | None  # the model file itself (None for a python factory without one)
    sha256: str | None
    threads: int  # intra-op threads one worker uses
    device: str  # "cpu" or "cuda"

    @property
    def text(self) -> bool:
        """Whether items are sentences (a text model such as MiniLM)."""
        return any(s.datatype == "BYTES" for s in self.config.inputs)

    def record(self) -> dict[str, Any]:
        """The ``model`` section of a profile or report."""
        artifact = self.artifact
        return {
            "name": self.config.name,
            "version": self.config.version,
            "runtime": self.config.runtime,
            "path": display_path(artifact) if artifact is not None else None,
            "sha256": self.sha256,
            "size_bytes": artifact.stat().st_size if artifact and artifact.is_file() else None,
        }


def display_path(path: Path) -> str:
    """Relative to the working directory when under it, so a committed profile (and the
    commands printed from it) reads the same on every checkout."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_device() -> str:
    """``cuda`` when torch is installed and sees a GPU, else ``cpu`` (torch is not required)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_target(
    path: Path,
    *,
    model: str | None = None,
    runtime: str | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Target:
    """A frugal.yaml's model (``model`` picks it; default the first) or a bare model file.

    ``threads`` and ``device`` override a config's settings only when given; a bare file gets
    one thread and :func:`default_device`. The MiniLM text model runs on CPU whatever the device.
    """
    if not path.exists():
        raise InvalidInput(
            f"{path}: file not found", hint="name a frugal.yaml or a model file (.onnx, ...)"
        )
    if path.suffix.lower() in CONFIG_SUFFIXES:
        if runtime is not None:
            raise InvalidInput(
                "--runtime is for a bare model file; a frugal.yaml names each model's runtime"
            )
        config = _from_config(path, model)
        artifact = config.path if config.path is not None and config.path.is_file() else None
        sha256 = config.sha256
    else:
        if model is not None:
            raise InvalidInput("--model picks a model of a frugal.yaml, not of a model file")
        config, artifact = _from_file(path, runtime)
        sha256 = sha256_of(artifact)
        if config.runtime != "python":
            config = config.model_copy(update={"sha256": sha256})
        device = device or default_device()
    config = _with_overrides(config, threads, device)
    return Target(
        config=config,
        source=path,
        artifact=artifact,
        sha256=sha256,
        threads=_threads_of(config),
        device=device if device and config.runtime in ("onnx", "torch") else _device_of(config),
    )


def load_target(target: Target) -> Model:
    """Verify (sha256) and load the model with its runtime; errors exit 2 naming the file."""
    from frugal.runtimes.loader import load_model

    return load_model(target.config)


def input_specs(target: Target, model: Model) -> list[TensorSpec]:
    """The inputs one item has: the config's ``inputs``, else what the loaded model declares."""
    if target.config.inputs:
        return list(target.config.inputs)
    session = getattr(model, "session", None)
    if session is not None and hasattr(session, "get_inputs"):  # an ONNX Runtime session
        specs = []
        for arg in session.get_inputs():
            dims = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]
            shape = [-1, *dims[1:]] if dims else [-1]
            datatype = ONNX_DATATYPES.get(arg.type, "FP32")
            specs.append(TensorSpec(name=arg.name, datatype=datatype, shape=shape))  # type: ignore[arg-type]
        return specs
    estimator = getattr(model, "estimator", None)
    features = getattr(estimator, "n_features_in_", None)
    if isinstance(features, int):
        return [TensorSpec(name="X", datatype="FP32", shape=[-1, features])]
    return []


def sample_items(
    target: Target, model: Model, data: Path | None, *, require_labels: bool = False
) -> tuple[list[Item], Dataset | None]:
    """Items to run: those of ``data`` (checked against the inputs), else made-up ones."""
    specs = input_specs(target, model)
    if data is not None:
        dataset = load_dataset(data, specs, require_labels=require_labels)
        return dataset.items, dataset
    if require_labels:
        raise InvalidInput("this needs labeled data", hint="pass --data FILE with labels")
    try:
        return synthesize_items(specs, 64), None
    except InvalidInput as exc:
        raise InvalidInput(f"model {target.config.key}: {exc.message}", hint=exc.hint) from None


def limit_threads(threads: int) -> AbstractContextManager[Any]:
    """Cap BLAS/OpenMP pools (numpy, scikit-learn) at ``threads`` while a worker is measured."""
    from threadpoolctl import threadpool_limits

    limits: AbstractContextManager[Any] = threadpool_limits(limits=threads)
    return limits


def _from_config(path: Path, name: str | None) -> ModelConfig:
    config = load_config(path)
    if name is None:
        return config.models[0]
    found = config.find_model(name)
    if found is None:
        declared = ", ".join(m.key for m in config.models)
        raise NotFound(f"{path}: no model {name!r}", hint=f"its models are {declared}")
    return found


def _from_file(path: Path, runtime: str | None) -> tuple[ModelConfig, Path]:
    if not path.is_file():
        raise InvalidInput(f"{path}: not a file")
    if runtime is None:
        runtime = SUFFIX_RUNTIMES.get(path.suffix.lower())
        if runtime is None:
            known = ", ".join(sorted(SUFFIX_RUNTIMES))
            raise InvalidInput(
                f"{path}: cannot tell the runtime from the suffix {path.suffix or '(none)'}",
                hint=f"pass --runtime sklearn|onnx|torch, or name the file {known}; "
                "for a frugal.yaml use .yaml",
            )
    if runtime == "python":
        raise InvalidInput(
            "--runtime python needs a factory; put the model in a frugal.yaml and pass that"
        )
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).lstrip("-_.") or "model"
    if runtime == "onnx" and _is_minilm_export(path):
        config = ModelConfig(
            name=name,
            runtime="python",
            factory=MINILM_FACTORY,
            inputs=[_TEXT_SPEC],
            options={"backend": "onnx", "onnx_file": str(path.resolve())},
        )
        return config, path
    try:
        config = ModelConfig(name=name, runtime=runtime, path=path, sha256="0" * 64)  # type: ignore[arg-type]
    except ValueError as exc:  # pydantic: an unknown runtime name
        raise InvalidInput(f"--runtime {runtime!r}: {exc}") from None
    return config, path


def _is_minilm_export(path: Path) -> bool:
    """Whether an ONNX file has the inputs of frugal's MiniLM export (reads its graph only)."""
    try:
        import onnx
    except ImportError:
        return False
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # not ONNX at all: the onnx runtime says so when it loads the file
        return False
    names = {i.name for i in graph.input}
    return names == _MINILM_INPUTS and [o.name for o in graph.output] == ["embedding"]


def _with_overrides(config: ModelConfig, threads: int | None, device: str | None) -> ModelConfig:
    options = dict(config.options)
    if config.runtime == "onnx":
        options.setdefault("intra_op_num_threads", 1)
        if threads is not None:
            options["intra_op_num_threads"] = threads
        if device is not None:
            options["providers"] = (
                ["CUDAExecutionProvider", "CPUExecutionProvider"]
                if device == "cuda"
                else ["CPUExecutionProvider"]
            )
    elif config.runtime == "torch":
        if threads is not None or "threads" not in options:
            options["threads"] = threads or 1
        if device is not None:
            options["device"] = device
    elif config.runtime == "python" and threads is not None:
        options["threads"] = threads
    if config.runtime == "sklearn":
        return config  # the sklearn runtime takes no options; BLAS threads are limited instead
    return config.model_copy(update={"options": options})


def _threads_of(config: ModelConfig) -> int:
    options = config.options
    value = options.get("intra_op_num_threads" if config.runtime == "onnx" else "threads", 1)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"model {config.key}: threads option is {value!r}")
    return value if value > 0 else len(os.sched_getaffinity(0))


def _device_of(config: ModelConfig) -> str:
    if config.runtime == "torch":
        return str(config.options.get("device") or default_device())
    if config.runtime == "onnx":
        import onnxruntime as ort

        providers = config.options.get("providers") or ort.get_available_providers()
        return "cuda" if "CUDAExecutionProvider" in providers else "cpu"
    return "cpu"


__all__ = [
    "CONFIG_SUFFIXES",
    "MINILM_FACTORY",
    "ONNX_DATATYPES",
    "SUFFIX_RUNTIMES",
    "Target",
    "default_device",
    "input_specs",
    "limit_threads",
    "load_target",
    "resolve_target",
    "sample_items",
]
