"""ONNX models run by ONNX Runtime.

Options (``models[].options`` in frugal.yaml; any other key is refused):

- ``intra_op_num_threads``, ``inter_op_num_threads``: default 1 each, since frugal runs one
  worker per slot and threads beyond that compete with the other slots for the same cores.
- ``graph_optimization_level``: ``disable``, ``basic``, ``extended`` or ``all`` (default).
- ``providers``: execution providers in order of preference; default CUDA then CPU, keeping only
  those this onnxruntime build has. A provider named here that the build lacks is an error.
- ``confidence``: ``max_probability`` makes a one-output model whose rows are probabilities
  (they sum to ~1, e.g. after a softmax) answer its largest probability as confidence.

Answers: a classifier converted by skl2onnx (outputs ``label`` and ``probabilities``, or
``output_label`` and ``output_probability`` when its ZipMap was kept) answers its label with the
max class probability as confidence. Any other model answers its output row as a nested list
(a dict of rows by output name when it has several outputs), with no confidence unless
``confidence: max_probability`` applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

from frugal.config import ModelConfig
from frugal.errors import ArtifactError, InvalidInput
from frugal.runtimes.base import top_two, verify_artifact
from frugal.types import Item, ModelRef, Prediction

_OPTIONS = frozenset(
    {
        "intra_op_num_threads",
        "inter_op_num_threads",
        "graph_optimization_level",
        "providers",
        "confidence",
    }
)
_OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
# ONNX tensor element types (as ``NodeArg.type`` spells them) -> numpy dtypes to feed.
_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
_CLASSIFIER_OUTPUTS = (("label", "probabilities"), ("output_label", "output_probability"))
_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within a few ulps, far inside this


class OnnxModel:
    """One ``InferenceSession``; ``run`` is thread-safe, so workers may share it."""

    def __init__(
        self, ref: ModelRef, session: ort.InferenceSession, *, max_probability: bool = False
    ) -> None:
        self.ref = ref
        self.session = session
        self._inputs = [(i.name, _DTYPES.get(i.type)) for i in session.get_inputs()]
        output_names = [o.name for o in session.get_outputs()]
        self._outputs = output_names
        self._classifier = next(
            (pair for pair in _CLASSIFIER_OUTPUTS if set(pair) <= set(output_names)), None
        )
        self._max_probability = max_probability

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        if not items:
            return []
        outputs = self.session.run(None, self._feed(items))
        by_name = dict(zip(self._outputs, outputs, strict=True))
        if self._classifier is not None:
            label_name, proba_name = self._classifier
            labels = np.asarray(by_name[label_name]).tolist()
            _, confidences, margins = top_two(_as_matrix(by_name[proba_name]))
            return [
                Prediction(v, c, margin=m)
                for v, c, m in zip(labels, confidences, margins, strict=True)
            ]
        if len(outputs) > 1:
            rows = [{n: _row(by_name[n], j) for n in self._outputs} for j in range(len(items))]
            return [Prediction(r) for r in rows]
        output = np.asarray(outputs[0])
        values = output.tolist()
        if self._max_probability and output.ndim == 2 and output.dtype.kind == "f":
            return [Prediction(v, _probability_max(r)) for v, r in zip(values, output, strict=True)]
        return [Prediction(v) for v in values]

    def _feed(self, items: Sequence[Item]) -> dict[str, np.ndarray]:
        if len(self._inputs) == 1 and not isinstance(items[0], dict):
            name, dtype = self._inputs[0]
            return {name: _stack(items, dtype)}
        feed = {}
        for name, dtype in self._inputs:
            if not all(isinstance(item, dict) and name in item for item in items):
                names = ", ".join(n for n, _ in self._inputs)
                raise InvalidInput(
                    f"model {self.ref.key} takes inputs {names}; each item must be an object "
                    "with all of them",
                    field=name,
                )
            feed[name] = _stack([item[name] for item in items], dtype)
        return feed


def load(config: ModelConfig) -> OnnxModel:
    """Verify the file's sha256, then open an ONNX Runtime session with the model's options."""
    path = verify_artifact(config)
    options = dict(config.options)
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ArtifactError(
            f"model {config.key}: unknown onnx option {unknown[0]!r}",
            hint=f"onnx options are {', '.join(sorted(_OPTIONS))}",
        )
    confidence = options.get("confidence")
    if confidence not in (None, "max_probability"):
        raise ArtifactError(
            f"model {config.key}: option confidence is {confidence!r}",
            hint="the one value it takes is max_probability",
        )
    session_options = _session_options(config)
    providers = _providers(config)
    try:
        session = ort.InferenceSession(str(path), sess_options=session_options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own classes, all straight from Exception
        raise ArtifactError(f"model {config.key}: cannot load {path}: {exc}") from exc
    return OnnxModel(
        ModelRef(config.name, config.version, config.sha256),
        session,
        max_probability=confidence == "max_probability",
    )


def _session_options(config: ModelConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    for key in ("intra_op_num_threads", "inter_op_num_threads"):
        value = config.options.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ArtifactError(
                f"model {config.key}: option {key} is {value!r}",
                hint="give a whole number of threads (0 lets onnxruntime choose)",
            )
        setattr(options, key, value)
    level = config.options.get("graph_optimization_level", "all")
    if level not in _OPTIMIZATION_LEVELS:
        raise ArtifactError(
            f"model {config.key}: option graph_optimization_level is {level!r}",
            hint=f"choose one of {', '.join(_OPTIMIZATION_LEVELS)}",
        )
    options.graph_optimization_level = _OPTIMIZATION_LEVELS[level]
    return options


def _providers(config: ModelConfig) -> list[str]:
    available = ort.get_available_providers()
    requested = config.options.get("providers")
    if requested is None:
        return [p for p in _PREFERRED_PROVIDERS if p in available]
    if isinstance(requested, str):
        requested = [requested]
    if not isinstance(requested, list) or not all(isinstance(p, str) for p in requested):
        raise ArtifactError(
            f"model {config.key}: option providers must be a list of provider names"
        )
    missing = [p for p in requested if p not in available]
    if missing:
        raise ArtifactError(
            f"model {config.key}: this onnxruntime has no {missing[0]}",
            hint=f"it has {', '.join(available)}; for CUDA install onnxruntime-gpu",
        )
    return list(requested)


def _stack(rows: Sequence[Any], dtype: Any) -> np.ndarray:
    batch = np.stack([np.asarray(r) for r in rows])
    return batch if dtype is None else batch.astype(dtype, copy=False)


def _row(output: Any, j: int) -> Any:
    row = output[j]
    return row.tolist() if isinstance(row, np.ndarray | np.generic) else row


def _as_matrix(probabilities: Any) -> np.ndarray:
    """A 2-D probability tensor, from a tensor or ZipMap's list of {label: p}."""
    if isinstance(probabilities, list):
        return np.array([list(row.values()) for row in probabilities], dtype=np.float64)
    return np.asarray(probabilities)


def _probability_max(row: np.ndarray) -> float | None:
    """The row's max if it is a probability distribution, else None (logits are not one)."""
    if abs(float(row.sum(dtype=np.float64)) - 1.0) > _SUM_TOLERANCE or row.min() < 0:
        return None
    return _unit(row.max())


def _unit(probability: Any) -> float:
    """Clamp into [0, 1]: float32 rounding can leave a certain class at 1.0000001."""
    return min(1.0, max(0.0, float(probability)))


__all__ = ["OnnxModel", "load"]
