"""``frugal quantize``: lower-precision variants of a model, each measured against fp32.

For every requested variant (int8 dynamic or static, fp16, bf16) this writes the converted file,
loads it through frugal's runtimes as the server would, and measures on the same items as the
fp32 original: file size, p50/p99 and items/s at batch 1 and a larger batch (``profile_model``),
and quality (``quality.py``: accuracy with labels, else agreement or cosine to fp32).

Nothing is kept unless every variant is within ``max_drop``: variants are written to a temporary
folder and moved next to the original (or into ``out_dir``) only when all pass.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frugal.errors import InvalidInput
from frugal.optimize.converters import (
    onnx_feeds,
    onnx_fp16,
    onnx_int8_dynamic,
    onnx_int8_static,
    text_feeds,
    torch_cast,
    torch_int8_dynamic,
)
from frugal.optimize.profile import hardware_record
from frugal.optimize.quality import answers, baseline_quality, compare
from frugal.optimize.target import (
    MINILM_FACTORY,
    ONNX_DATATYPES,
    Target,
    limit_threads,
    load_target,
    sample_items,
)
from frugal.optimize.variants import Timing, Variant, over_max_drop, step_progress, timed
from frugal.runtimes.base import Model, sha256_of
from frugal.runtimes.schema import NUMPY_DTYPES
from frugal.types import Item

FORMAT = "frugal-quantize/1"
PRECISIONS = ("int8", "fp16", "bf16")
METHODS = ("dynamic", "static")
# The rule of thumb users quote: fp16 halves the file, int8 quarters it, for ~1 point of accuracy.
EXPECTED_SIZE = {"int8": 0.25, "fp16": 0.5, "bf16": 0.5}
EXPECTED_DROP = 0.01
_TORCHSCRIPT = (".pt", ".pth", ".ts")


@dataclass(frozen=True, slots=True)
class QuantizeReport:
    """The fp32 baseline, the variants, and whether each stayed within ``max_drop``."""

    model: dict[str, Any]
    hardware: dict[str, Any]
    threads: int
    data: str | None
    items: int
    max_drop: float | None
    baseline: Variant
    variants: tuple[Variant, ...]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def over_max_drop(self) -> list[Variant]:
        return over_max_drop(self.variants, self.max_drop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "model": self.model,
            "hardware": self.hardware,
            "threads": self.threads,
            "data": self.data,
            "items": self.items,
            "max_drop": self.max_drop,
            "passed": not self.over_max_drop,
            "baseline": self.baseline.to_dict(),
            "variants": [v.to_dict(self.baseline) for v in self.variants],
        }


def variant_names(precisions: Sequence[str], method: str) -> list[str]:
    """``int8`` with ``--method static`` is ``int8-static``; fp16 and bf16 have no method."""
    return [f"int8-{method}" if p == "int8" else p for p in precisions]


def quantize_model(
    target: Target,
    precisions: Sequence[str],
    *,
    method: str = "dynamic",
    data: Path | None = None,
    max_drop: float | None = None,
    out_dir: Path | None = None,
    timing: Timing | None = None,
    progress: bool = True,
) -> QuantizeReport:
    """Make, load and measure each variant; keep the files only if none drops over max_drop."""
    timing = timing or Timing()
    kind = _kind(target, precisions, method)
    if method == "static" and "int8" in precisions and data is None:
        raise InvalidInput(
            "static int8 calibrates activation ranges on sample data",
            hint="pass --data FILE, or use --method dynamic",
        )
    source = target.artifact
    assert source is not None  # _kind checked it
    out_dir = out_dir or source.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"--out-dir {out_dir}: not a folder")
    model = load_target(target)
    items, dataset = sample_items(target, model, data)
    steps = 1 + len(precisions)
    with step_progress(progress, steps, "quantizing") as advance, limit_threads(target.threads):
        advance(f"measuring fp32 on {len(items)} items")
        reference = answers(model, items)
        labels = dataset.labels if dataset is not None else None
        baseline = Variant(
            name="fp32",
            path=source,
            sha256=target.sha256,
            size_bytes=source.stat().st_size,
            quality=baseline_quality(reference, labels),
            profile=timed(model, items, target, timing),
        )
        calibration = _calibration(kind, model, items) if method == "static" else []
        del model
        variants = []
        with tempfile.TemporaryDirectory(prefix="frugal-quantize-") as tmp:
            for name in variant_names(precisions, method):
                advance(f"{name}: converting and measuring")
                final = out_dir / f"{source.stem}.{name}{source.suffix}"
                variants.append(
                    _variant(
                        name, kind, target, Path(tmp) / final.name, final, items, calibration,
                        reference, labels, timing,
                    )
                )  # fmt: skip
            report = QuantizeReport(
                model=target.record(),
                hardware=hardware_record(target.device),
                threads=target.threads,
                data=str(data) if data else None,
                items=len(items),
                max_drop=max_drop,
                baseline=baseline,
                variants=tuple(variants),
            )
            if not report.over_max_drop:
                _move_into_place(Path(tmp), out_dir, variants)
    return report


def _variant(
    name: str,
    kind: str,
    target: Target,
    tmp: Path,
    final: Path,
    items: list[Item],
    calibration: list[dict[str, Any]],
    reference: list[Any],
    labels: list[Any] | None,
    timing: Timing,
) -> Variant:
    source = target.artifact
    assert source is not None
    note = None
    if kind == "torch" and name == "fp16" and target.device != "cuda":
        return Variant(
            name, None, None, None, skipped="fp16 is a GPU variant: the torch runtime refuses "
            "float16 on CPU; use --to bf16 on CPU, or --device cuda on a GPU",
        )  # fmt: skip
    if kind == "torch" and name.startswith("int8") and target.device == "cuda":
        note = "int8 dynamic kernels are CPU only: measured on CPU"
    if name == "fp16" and kind != "torch" and target.device != "cuda":
        note = "fp16 is a GPU variant; on CPU onnxruntime runs it, usually no faster"
    if kind == "torch" and name == "int8-dynamic":
        options = torch_int8_dynamic(source, tmp)
    elif kind == "torch":
        options = torch_cast(source, tmp, "float16" if name == "fp16" else "bfloat16")
    elif name == "int8-dynamic":
        options = onnx_int8_dynamic(source, tmp)
    elif name == "int8-static":
        options = onnx_int8_static(source, tmp, calibration)
    else:
        options = onnx_fp16(source, tmp)
    sha256 = sha256_of(tmp)
    variant_target = _variant_target(target, tmp, sha256, options)
    model = load_target(variant_target)
    quality = compare(reference, answers(model, items), labels)
    return Variant(
        name=name,
        path=final,
        sha256=sha256,
        size_bytes=tmp.stat().st_size,
        quality=quality,
        profile=timed(model, items, variant_target, timing),
        options=options,
        note=note,
    )


def _kind(target: Target, precisions: Sequence[str], method: str) -> str:
    """``onnx`` (incl. the MiniLM export) or ``torch`` (TorchScript); anything else is refused."""
    config = target.config
    if method not in METHODS:
        raise InvalidInput(f"--method {method!r}: choose dynamic or static")
    if not precisions:
        raise InvalidInput("--to names no precision", hint="e.g. --to int8 or --to int8,fp16")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise InvalidInput(f"--to {unknown[0]!r}: choose from {', '.join(PRECISIONS)}")
    minilm = config.runtime == "python" and config.factory == MINILM_FACTORY
    if target.artifact is None or not (config.runtime in ("onnx", "torch") or minilm):
        raise InvalidInput(
            f"model {config.key}: frugal quantize works on ONNX and TorchScript files, "
            f"not runtime {config.runtime}",
            hint="export a scikit-learn model with skl2onnx (see docs/quantize.md); for MiniLM "
            "pass its ONNX file (~/.cache/frugal/minilm-l6-v2.onnx)",
        )
    kind = "torch" if config.runtime == "torch" else "onnx"
    if kind == "torch" and target.artifact.suffix.lower() not in _TORCHSCRIPT:
        raise InvalidInput(
            f"{target.artifact}: frugal quantize reads TorchScript (.pt, .pth, .ts), not "
            "torch.export (.pt2)",
            hint="save the model with torch.jit.script(model).save(...) or export it to ONNX",
        )
    if kind == "onnx" and "bf16" in precisions:
        raise InvalidInput("--to bf16 is for TorchScript models", hint="for ONNX use --to fp16")
    if kind == "torch" and method == "static" and "int8" in precisions:
        raise InvalidInput(
            "static int8 is for ONNX models", hint="use --method dynamic for TorchScript"
        )
    return kind


def _variant_target(target: Target, path: Path, sha256: str, options: dict[str, Any]) -> Target:
    config = target.config
    if config.runtime == "python":  # the MiniLM export: the factory opens the file it is given
        new_config = config.model_copy(
            update={"options": {**config.options, "onnx_file": str(path)}}
        )
    else:
        update = {"path": path, "sha256": sha256, "options": {**config.options, **options}}
        new_config = config.model_copy(update=update)
    device = options.get("device", target.device)
    return replace(target, config=new_config, artifact=path, sha256=sha256, device=device)


def _calibration(kind: str, model: Model, items: list[Item]) -> list[dict[str, Any]]:
    if kind != "onnx":
        return []
    embedder = getattr(model, "target", None)
    if embedder is not None and hasattr(embedder, "encode"):  # MiniLM: feed token ids
        return text_feeds(embedder.encode, [str(i) for i in items])
    session = getattr(model, "session", None)
    if session is None:
        raise InvalidInput("static int8 needs an ONNX Runtime model")
    inputs = [
        (i.name, NUMPY_DTYPES.get(ONNX_DATATYPES.get(i.type, ""), object))
        for i in session.get_inputs()
    ]
    return onnx_feeds(inputs, items)


def _move_into_place(tmp: Path, out_dir: Path, variants: list[Variant]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for variant in variants:
        if variant.path is not None:
            shutil.move(str(tmp / variant.path.name), str(variant.path))


__all__ = [
    "EXPECTED_DROP",
    "EXPECTED_SIZE",
    "FORMAT",
    "METHODS",
    "PRECISIONS",
    "QuantizeReport",
    "Timing",
    "Variant",
    "quantize_model",
    "variant_names",
]
