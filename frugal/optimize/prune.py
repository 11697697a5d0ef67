"""``frugal prune``: magnitude-pruned copies of a TorchScript model, each measured against it.

Per sparsity level this writes the pruned file (``pruning.py``: torch.nn.utils.prune's L1 or
L2-row rule applied to the Linear/Conv weights), loads it through frugal's torch runtime as the
server would, and measures on the same items as the original: the share of zero weights counted
from the saved file, file size and gzip size (unstructured zeros only shrink a compressed file),
p50 and items/s at batch 1 and a larger batch (``profile_model``), and quality (``quality.py``).

Zeros in a dense weight matrix are still multiplied, so pruning alone brings no speed. With
``--structured`` a plain Sequential MLP is also physically shrunk and measured as its own row.

Nothing is kept unless every level is within ``max_drop``: files are written to a temporary
folder and moved beside the original (or into ``out_dir``) only when all pass.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.optimize.pruning import (
    Sparsity,
    layer_sizes,
    load_scripted,
    prunable_layers,
    prune_weights,
    save_scripted,
    shrink_sequential,
    weight_sparsity,
)
from frugal.optimize.quality import Quality, answers, baseline_quality, compare
from frugal.optimize.target import Target, limit_threads, load_target, sample_items
from frugal.optimize.variants import Timing, Variant, over_max_drop, step_progress, timed
from frugal.runtimes.base import Model, sha256_of
from frugal.types import Item

FORMAT = "frugal-prune/1"
NO_SPEEDUP = 0.10  # an items/s gain under 10% is within this machine's noise
_TORCHSCRIPT = (".pt", ".pth", ".ts")


@dataclass(frozen=True, slots=True)
class Level:
    """One pruned file (or the original, sparsity None) and what was measured of it."""

    variant: Variant
    amount: float | None  # the requested sparsity
    sparsity: Sparsity | None  # counted from the saved file
    gzip_bytes: int
    shrunk: bool = False

    @property
    def name(self) -> str:
        return self.variant.name

    def to_dict(self, base: Level | None = None) -> dict[str, Any]:
        out = self.variant.to_dict(base.variant if base is not None else None)
        out.update(amount=self.amount, gzip_bytes=self.gzip_bytes, shrunk=self.shrunk)
        if self.sparsity is not None:
            s = self.sparsity
            out["sparsity"] = round(s.share, 6)
            out["weights"] = {"original": s.original, "kept": s.kept, "zeros": s.zeros}
        return out


@dataclass(frozen=True, slots=True)
class PruneReport:
    """The original, the pruned levels, and whether each stayed within ``max_drop``."""

    model: dict[str, Any]
    hardware: dict[str, Any]
    threads: int
    structured: bool
    layers: tuple[str, ...]
    data: str | None
    items: int
    max_drop: float | None
    baseline: Level
    levels: tuple[Level, ...]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def over_max_drop(self) -> list[Level]:
        return [lv for lv in self.levels if over_max_drop([lv.variant], self.max_drop)]

    def no_speedup(self) -> list[Level]:
        """Levels whose items/s at the larger batch gained under NO_SPEEDUP over the original."""
        base = _items_per_s(self.baseline)
        return [
            lv for lv in self.levels if base and _items_per_s(lv) < base * (1 + NO_SPEEDUP)
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "model": self.model,
            "hardware": self.hardware,
            "threads": self.threads,
            "method": "ln_structured(n=2, dim=0)" if self.structured else "l1_unstructured",
            "layers": list(self.layers),
            "data": self.data,
            "items": self.items,
            "max_drop": self.max_drop,
            "passed": not self.over_max_drop,
            "baseline": self.baseline.to_dict(),
            "levels": [lv.to_dict(self.baseline) for lv in self.levels],
        }


def parse_sparsity(value: str) -> list[float]:
    """``0.3,0.5,0.7`` -> [0.3, 0.5, 0.7]; each level strictly between 0 and 1."""
    try:
        levels = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(
            f"--sparsity {value!r}: not a comma list of numbers", hint="e.g. --sparsity 0.3,0.5"
        ) from None
    bad = [v for v in levels if not 0 < v < 1]
    if not levels or bad:
        shown = f"{bad[0]:g}" if bad else "nothing"
        raise InvalidInput(
            f"--sparsity {shown}: each level is a share of weights strictly between 0 and 1",
            hint="e.g. --sparsity 0.3,0.5,0.7",
        )
    return sorted(set(levels))


def prune_model(
    target: Target,
    amounts: Sequence[float],
    *,
    structured: bool = False,
    data: Path | None = None,
    max_drop: float | None = None,
    out_dir: Path | None = None,
    timing: Timing | None = None,
    progress: bool = True,
) -> PruneReport:
    """Prune, load and measure each level; keep the files only if none drops over max_drop."""
    timing = timing or Timing()
    source = _check(target)
    out_dir = out_dir or source.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"--out-dir {out_dir}: not a folder")
    original = load_scripted(source)
    layers = prunable_layers(original, structured=structured)
    sizes = layer_sizes(original, layers)
    target = _with_input_spec(target, original)
    model = load_target(target)
    items, dataset = sample_items(target, model, data)
    labels = dataset.labels if dataset is not None else None
    with (
        step_progress(progress, 1 + len(amounts), "pruning") as advance,
        limit_threads(target.threads),
    ):
        advance(f"measuring the original on {len(items)} items")
        reference = _reference(model, items, data)
        base_variant = Variant(
            name="original", path=source, sha256=target.sha256,
            size_bytes=source.stat().st_size, quality=baseline_quality(reference, labels),
            profile=timed(model, items, target, timing),
        )  # fmt: skip
        baseline = Level(base_variant, None, None, _gzip_size(source))
        del model
        levels: list[Level] = []
        kind = "structured" if structured else "unstructured"
        with tempfile.TemporaryDirectory(prefix="frugal-prune-") as tmp:
            for amount in sorted(amounts):
                name = f"{kind}-{100 * amount:g}"
                advance(f"{name}: pruning and measuring")
                module = load_scripted(source)
                prune_weights(module, layers, amount, structured=structured)
                written = Path(tmp) / f"{source.stem}.{name}{source.suffix}"
                save_scripted(module, written)
                measure = _Measure(target, items, reference, labels, timing, layers, sizes)
                levels.append(measure(name, amount, written, out_dir))
                if structured:
                    shrunk, why = shrink_sequential(module)
                    if shrunk is None:
                        levels[-1] = _noted(levels[-1], why)
                    else:
                        small = written.with_name(f"{source.stem}.{name}-shrunk{source.suffix}")
                        save_scripted(shrunk, small)
                        levels.append(measure(f"{name}-shrunk", amount, small, out_dir, True))
            report = PruneReport(
                model=target.record(),
                hardware=base_variant.profile.hardware if base_variant.profile else {},
                threads=target.threads,
                structured=structured,
                layers=tuple(layers),
                data=str(data) if data else None,
                items=len(items),
                max_drop=max_drop,
                baseline=baseline,
                levels=tuple(levels),
            )
            if not report.over_max_drop:
                out_dir.mkdir(parents=True, exist_ok=True)
                for level in levels:
                    path = level.variant.path
                    assert path is not None
                    shutil.move(str(Path(tmp) / path.name), str(path))
    return report


@dataclass(frozen=True, slots=True)
class _Measure:
    """Load a written file through the torch runtime and measure it like the original."""

    target: Target
    items: list[Item]
    reference: list[Any]
    labels: list[Any] | None
    timing: Timing
    layers: list[str]
    sizes: dict[str, int]

    def __call__(
        self, name: str, amount: float, written: Path, out_dir: Path, shrunk: bool = False
    ) -> Level:
        sha256 = sha256_of(written)
        config = self.target.config.model_copy(update={"path": written, "sha256": sha256})
        variant_target = replace(self.target, config=config, artifact=written, sha256=sha256)
        model = load_target(variant_target)
        quality: Quality = compare(self.reference, answers(model, self.items), self.labels)
        variant = Variant(
            name=name,
            path=out_dir / written.name,
            sha256=sha256,
            size_bytes=written.stat().st_size,
            quality=quality,
            profile=timed(model, self.items, variant_target, self.timing),
        )
        sparsity = weight_sparsity(written, self.layers, self.sizes)
        return Level(variant, amount, sparsity, _gzip_size(written), shrunk)


def _with_input_spec(target: Target, module: Any) -> Target:
    """A Sequential starting with a Linear layer takes rows of its ``in_features``: say so, so
    ``--data`` with other columns is refused up front (exit 2) rather than failing in torch."""
    children = list(module.children())
    if target.config.inputs or getattr(module, "original_name", "") != "Sequential":
        return target
    if not children or getattr(children[0], "original_name", "") != "Linear":
        return target
    width = int(children[0].weight.shape[1])
    spec = TensorSpec(name="x", datatype="FP32", shape=[-1, width])
    return replace(target, config=target.config.model_copy(update={"inputs": [spec]}))


def _reference(model: Model, items: list[Item], data: Path | None) -> list[Any]:
    """The original's answers; a model that cannot run the items is a bad input, not a crash."""
    try:
        return answers(model, items)
    except Exception as exc:  # torch raises RuntimeError on a shape mismatch, and more
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
        raise InvalidInput(
            f"the model fails on the {'--data' if data else 'made-up'} items: {first}",
            hint="--data rows must be what the model's forward takes (columns = input width)"
            if data
            else "pass --data FILE with rows the model takes",
        ) from None


def _noted(level: Level, note: str) -> Level:
    return replace(level, variant=replace(level.variant, note=note))


def _check(target: Target) -> Path:
    """The TorchScript file to prune; anything else exits 2 saying what frugal prune reads."""
    config = target.config
    source = target.artifact
    if config.runtime != "torch" or source is None:
        raise InvalidInput(
            f"model {config.key}: frugal prune works on PyTorch (TorchScript) models, not "
            f"runtime {config.runtime}",
            hint="save the torch model with torch.jit.script(model).save('model.pt'); for ONNX "
            "or scikit-learn models use frugal quantize",
        )
    if source.suffix.lower() not in _TORCHSCRIPT:
        raise InvalidInput(
            f"{source}: frugal prune reads TorchScript (.pt, .pth, .ts), not torch.export (.pt2)",
            hint="save the model with torch.jit.script(model).save(...)",
        )
    return source


def _gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=6))


def _items_per_s(level: Level) -> float:
    profile = level.variant.profile
    if profile is None or not profile.points:
        return 0.0
    return max(profile.points, key=lambda p: p.batch_size).items_per_s


__all__ = ["FORMAT", "NO_SPEEDUP", "Level", "PruneReport", "parse_sparsity", "prune_model"]
