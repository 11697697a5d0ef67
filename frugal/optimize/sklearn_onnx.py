"""A scikit-learn classifier as ONNX, the one way the toolkit writes it (``frugal distill``'s
student, ``frugal export --edge``'s bundle): skl2onnx with ZipMap removed, so the graph answers
``label`` and ``probabilities`` as plain tensors that frugal's onnx runtime and the edge runner
read as they are."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from frugal.errors import ArtifactError


def sklearn_to_onnx(
    estimator: Any,
    shape: list[int | None],
    dest: Path,
    *,
    failure: str,
    input_name: str = "X",
    target_opset: int | None = None,
) -> None:
    """Writes ``dest``; ``shape`` is the FP32 input's, batch first (None). A model skl2onnx
    cannot convert is an ArtifactError: ``failure: <why>``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = convert_sklearn(
                estimator,
                initial_types=[(input_name, FloatTensorType(shape))],
                options={id(estimator): {"zipmap": False}},
                target_opset=target_opset,
            )
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, ...
        raise ArtifactError(f"{failure}: {exc}") from exc
    dest.write_bytes(proto.SerializeToString())


__all__ = ["sklearn_to_onnx"]
