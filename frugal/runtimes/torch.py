"""PyTorch models saved as TorchScript (``.pt``, ``.pth``, ``.ts``) or ``torch.export`` (``.pt2``).

Prefer ``.pt2``: PyTorch deprecates TorchScript, and ``torch.jit.load`` warns so when it loads one.

Options (``models[].options`` in frugal.yaml; any other key is refused):

- ``device``: default ``cuda`` when torch sees a GPU, else ``cpu``. CPU and GPU run the same
  code; only where the tensors live differs.
- ``dtype``: ``float32`` (default) or ``bfloat16``; ``float16`` on CUDA only. Float inputs are
  cast to it; integer inputs (token ids) are left alone.
- ``threads``: calls ``torch.set_num_threads``, which is process-wide, so it changes every torch
  model in this process; left unset, torch keeps its own setting.
- ``output``: how to read a single-tensor output. ``logits``: a 2-D float output (batch, classes)
  answers its argmax with the max softmax probability as confidence. ``probabilities``: the
  same, for a model whose output already sums to 1 per row (no second softmax). ``raw``: the row
  as a nested list, no confidence. ``auto`` (default): ``logits`` for a 2-D float output when
  ``classifier: true``, else ``raw``.
- ``classifier``: true or false (default), read by ``output: auto``.

Items are numpy rows, stacked into one batch tensor and passed positionally, or dicts of rows
(several inputs), stacked per name and passed to the forward argument of that name. A model
returning a tuple, list or dict of tensors answers, per item, the same structure holding that
item's rows.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.export.passes import move_to_device_pass

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes.base import top_two, verify_artifact
from frugal.types import Item, ModelRef, Prediction

_OPTIONS = frozenset({"device", "dtype", "threads", "output", "classifier"})
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_OUTPUTS = ("auto", "logits", "probabilities", "raw")
_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts")
_EXPORT_SUFFIX = ".pt2"


class TorchModel:
    """A module in inference mode on one device; torch releases the GIL while it computes."""

    def __init__(
        self,
        ref: ModelRef,
        module: torch.nn.Module,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        output: str = "auto",
        classifier: bool = False,
    ) -> None:
        self.ref = ref
        self.module = module
        self.device = device
        self.dtype = dtype
        self.output = output
        self.classifier = classifier
        try:
            self._signature: inspect.Signature | None = inspect.signature(module.forward)
        except (TypeError, ValueError):  # TorchScript methods have none, but take keywords
            self._signature = None

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        if not items:
            return []
        with torch.inference_mode():
            if isinstance(items[0], dict):
                names = list(items[0])
                kwargs = {n: self._tensor([item[n] for item in items]) for n in names}
                if self._signature is None:
                    output = self.module(**kwargs)
                else:  # exported modules refuse keywords for arguments exported positionally
                    bound = self._signature.bind(**kwargs)
                    output = self.module(*bound.args, **bound.kwargs)
            else:
                output = self.module(self._tensor(items))
        return self._answers(output, len(items))

    def _tensor(self, rows: Sequence[Any]) -> torch.Tensor:
        tensor = torch.as_tensor(np.stack([np.asarray(r) for r in rows]), device=self.device)
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _answers(self, output: Any, count: int) -> list[Prediction]:
        if isinstance(output, torch.Tensor):
            array = _to_numpy(output, count, self.ref.key)
            as_classes = self.output != "raw" and (self.output != "auto" or self.classifier)
            if as_classes and array.ndim == 2 and array.dtype.kind == "f":
                return _classes(array, softmax=self.output != "probabilities")
            if self.output in ("logits", "probabilities"):  # asked for explicitly, so not met
                raise RuntimeError(
                    f"model {self.ref.key}: output {self.output} needs a 2-D float output "
                    f"(batch, classes), got {array.dtype} of shape {list(array.shape)}"
                )
            return [Prediction(v) for v in array.tolist()]
        if isinstance(output, tuple | list):
            arrays = [_to_numpy(t, count, self.ref.key) for t in output]
            return [Prediction([a[j].tolist() for a in arrays]) for j in range(count)]
        if isinstance(output, dict):
            named = {k: _to_numpy(t, count, self.ref.key) for k, t in output.items()}
            return [Prediction({k: a[j].tolist() for k, a in named.items()}) for j in range(count)]
        raise RuntimeError(
            f"model {self.ref.key} returned {type(output).__name__}; frugal reads a tensor, "
            "or a tuple, list or dict of tensors"
        )


def load(config: ModelConfig) -> TorchModel:
    """Verify the file's sha256, then load it onto the configured device and dtype."""
    path = verify_artifact(config)
    options = config.options
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ArtifactError(
            f"model {config.key}: unknown torch option {unknown[0]!r}",
            hint=f"torch options are {', '.join(sorted(_OPTIONS))}",
        )
    device = _device(config)
    dtype = _dtype(config, device)
    output, classifier = _output(config)
    if "threads" in options:
        threads = options["threads"]
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ArtifactError(f"model {config.key}: option threads is {threads!r}")
        torch.set_num_threads(threads)
    suffix = path.suffix.lower()
    if suffix not in (*_TORCHSCRIPT_SUFFIXES, _EXPORT_SUFFIX):
        raise ArtifactError(
            f"model {config.key}: cannot tell the format of {path} from its suffix",
            hint="name TorchScript files .pt, .pth or .ts and torch.export archives .pt2",
        )
    try:
        module: torch.nn.Module
        if suffix == _EXPORT_SUFFIX:
            program = torch.export.load(str(path))
            # Moves constants and device arguments baked into the graph, which .to() misses.
            program = move_to_device_pass(program, device)
            module = program.module()
        else:
            # torch.jit.load has no annotations; it returns a ScriptModule (an nn.Module).
            module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
            module.eval()  # exported modules have no eval(): export fixed their mode already
        if dtype != torch.float32:
            module = module.to(dtype)
    except Exception as exc:  # torch raises RuntimeError, pickle and zip errors, and more
        raise ArtifactError(f"model {config.key}: cannot load {path}: {exc}") from exc
    return TorchModel(
        ModelRef(config.name, config.version, config.sha256),
        module,
        device=device,
        dtype=dtype,
        output=output,
        classifier=classifier,
    )


def _device(config: ModelConfig) -> torch.device:
    default = "cuda" if torch.cuda.is_available() else "cpu"
    name = config.options.get("device", default)
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ArtifactError(f"model {config.key}: option device is {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArtifactError(
            f"model {config.key}: device {name} asked for, but torch sees no CUDA GPU",
            hint="use device: cpu, or install a CUDA build of torch on a machine with a GPU",
        )
    return device


def _dtype(config: ModelConfig, device: torch.device) -> torch.dtype:
    name = config.options.get("dtype", "float32")
    if name not in _DTYPES:
        raise ArtifactError(
            f"model {config.key}: option dtype is {name!r}",
            hint=f"choose one of {', '.join(_DTYPES)}",
        )
    if name == "float16" and device.type != "cuda":
        raise ArtifactError(
            f"model {config.key}: dtype float16 needs a CUDA device, not {device}",
            hint="on CPU use bfloat16 (fast on CPUs with AMX or AVX-512 BF16) or float32",
        )
    return _DTYPES[name]


def _output(config: ModelConfig) -> tuple[str, bool]:
    output = config.options.get("output", "auto")
    classifier = config.options.get("classifier", False)
    if output not in _OUTPUTS:
        raise ArtifactError(
            f"model {config.key}: option output is {output!r}",
            hint=f"choose one of {', '.join(_OUTPUTS)}",
        )
    if not isinstance(classifier, bool):
        raise ArtifactError(f"model {config.key}: option classifier must be true or false")
    return str(output), classifier


def _to_numpy(tensor: Any, count: int, key: str) -> np.ndarray:
    if not isinstance(tensor, torch.Tensor) or tensor.ndim == 0 or len(tensor) != count:
        got = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise RuntimeError(f"model {key}: expected an output of {count} rows, got {got}")
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()  # numpy has no bfloat16; float32 holds both exactly
    array: np.ndarray = tensor.detach().cpu().numpy()
    return array


def _classes(scores: np.ndarray, *, softmax: bool) -> list[Prediction]:
    """Argmax per row, with its probability (after a softmax of logits) as confidence."""
    probabilities = scores.astype(np.float64)
    if softmax:
        exp = np.exp(probabilities - probabilities.max(axis=1, keepdims=True))
        probabilities = exp / exp.sum(axis=1, keepdims=True)
    best, confidences, margins = top_two(probabilities)
    return [Prediction(v, c, margin=m) for v, c, m in zip(best, confidences, margins, strict=True)]


__all__ = ["TorchModel", "load"]
