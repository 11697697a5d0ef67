"""Write a lower-precision copy of a model file: ONNX int8 (dynamic, static) and fp16; TorchScript
int8 (dynamic) and fp16/bf16.

Each function reads ``source``, writes ``dest`` and returns the runtime options the copy needs
(e.g. ``{"dtype": "bfloat16"}`` for a torch bf16 copy). Foreign errors become ArtifactError naming
the variant, so the CLI prints them instead of a traceback.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from frugal.errors import ArtifactError, InvalidInput

Feeds = Sequence[dict[str, np.ndarray]]  # calibration batches, as session.run feeds
CALIBRATION_ITEMS = 256  # items the static calibration runs (more adds time, rarely range)


@contextmanager
def _converting(variant: str, source: Path) -> Iterator[None]:
    """Quiet the converters' advice logs and deprecation noise; translate their failures."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization logs "consider pre-processing" here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    except (ArtifactError, InvalidInput):
        raise
    except Exception as exc:  # the converters raise ValueError, RuntimeError, onnx errors...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        hint = None
        if "ai.onnx domain" in message:
            message = "the graph has no standard ONNX operators to quantize"
            hint = (
                "int8 quantizes MatMul, Gemm and Conv; a skl2onnx linear model is one "
                "ai.onnx.ml operator (an MLP, or a torch export, has MatMuls)"
            )
        raise ArtifactError(f"{variant} of {source}: {message}", hint=hint) from exc
    finally:
        root.setLevel(level)


def onnx_int8_dynamic(source: Path, dest: Path) -> dict[str, Any]:
    """Weights stored as int8; activations quantized on the fly per batch (no calibration)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _converting("int8 (dynamic)", source):
        quantize_dynamic(source, dest, weight_type=QuantType.QInt8)
    return {}


def onnx_int8_static(source: Path, dest: Path, feeds: Feeds) -> dict[str, Any]:
    """Weights and activations int8 (QDQ), activation ranges calibrated on ``feeds``.

    uint8 activations with int8 weights: onnxruntime's advice for x86 CPUs.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    with _converting("int8 (static)", source):
        quantize_static(
            source,
            dest,
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    return {}


def onnx_fp16(source: Path, dest: Path) -> dict[str, Any]:
    """Float tensors stored as fp16; inputs and outputs stay fp32 so callers change nothing."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with _converting("fp16", source):
        model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        onnx.save(model, str(dest))
    return {}


def onnx_feeds(
    inputs: Sequence[tuple[str, Any]], items: Sequence[Any], batch_size: int = 16
) -> list[dict[str, np.ndarray]]:
    """Calibration feeds from items: ``inputs`` are (name, numpy dtype) of the ONNX graph."""
    feeds = []
    items = list(items)[:CALIBRATION_ITEMS]
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        if len(inputs) == 1 and not isinstance(batch[0], dict):
            name, dtype = inputs[0]
            feeds.append({name: np.stack([np.asarray(i) for i in batch]).astype(dtype)})
        else:
            feeds.append(
                {n: np.stack([np.asarray(i[n]) for i in batch]).astype(d) for n, d in inputs}
            )
    return feeds


def text_feeds(
    encode: Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]],
    texts: Sequence[str],
    batch_size: int = 16,
) -> list[dict[str, np.ndarray]]:
    """Calibration feeds for the MiniLM export: tokenized sentences, padded per batch."""
    texts = list(texts)[:CALIBRATION_ITEMS]
    feeds = []
    for start in range(0, len(texts), batch_size):
        ids, mask = encode(texts[start : start + batch_size])
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds


def torch_int8_dynamic(source: Path, dest: Path) -> dict[str, Any]:
    """Linear layers with int8 weights, activations quantized per batch (CPU kernels only).

    The artifact is TorchScript, so this is graph-mode ``quantize_dynamic_jit``: the same
    rewrite as eager ``torch.ao.quantization.quantize_dynamic`` on Linear layers.
    """
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit

    with _converting("int8 (dynamic)", source):
        module = torch.jit.load(str(source), map_location="cpu")  # type: ignore[no-untyped-call]
        qconfig = {"": default_dynamic_qconfig}
        quantized = quantize_dynamic_jit(module.eval(), qconfig)  # type: ignore[no-untyped-call]
        torch.jit.save(quantized, str(dest))
    return {"device": "cpu"}


def torch_cast(source: Path, dest: Path, dtype: str) -> dict[str, Any]:
    """Weights cast to ``float16`` or ``bfloat16``; the runtime's ``dtype`` option casts inputs."""
    import torch

    with _converting(dtype, source):
        module = torch.jit.load(str(source), map_location="cpu")  # type: ignore[no-untyped-call]
        torch.jit.save(module.to(getattr(torch, dtype)), str(dest))
    return {"dtype": dtype}


__all__ = [
    "CALIBRATION_ITEMS",
    "onnx_feeds",
    "onnx_fp16",
    "onnx_int8_dynamic",
    "onnx_int8_static",
    "text_feeds",
    "torch_cast",
    "torch_int8_dynamic",
]
