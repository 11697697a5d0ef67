"""What ``frugal quantize`` and ``frugal prune`` share: one measured model file (a variant),
how long each is timed, the progress bar over their steps, and the --max-drop verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugal.optimize.profile import Profile, profile_model
from frugal.optimize.quality import Quality
from frugal.optimize.target import Target
from frugal.runtimes.base import Model
from frugal.types import Item


@dataclass(frozen=True, slots=True)
class Timing:
    """How long each variant is timed: ``profile_model``'s knobs, and the larger batch."""

    batch_size: int = 32
    warmup: int = 3
    min_repeats: int = 20
    min_seconds: float = 0.3


@dataclass(frozen=True, slots=True)
class Variant:
    """One model file (fp32 original or a variant) and what was measured of it."""

    name: str  # "fp32", "int8-dynamic", "int8-static", "fp16", "bf16"
    path: Path | None
    sha256: str | None
    size_bytes: int | None
    quality: Quality | None = None
    profile: Profile | None = None
    options: dict[str, Any] = field(default_factory=dict)  # runtime options the file needs
    note: str | None = None
    skipped: str | None = None  # why it was not made (e.g. fp16 torch on CPU)

    def to_dict(self, base: Variant | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "options": self.options,
            "note": self.note,
            "skipped": self.skipped,
        }
        if base is not None and base.size_bytes and self.size_bytes:
            out["size_ratio"] = round(self.size_bytes / base.size_bytes, 4)
        if self.quality is not None:
            out["quality"] = {
                "metric": self.quality.metric,
                "value": round(self.quality.value, 6),
                "drop": round(self.quality.drop, 6),
                "min_cosine": self.quality.min_cosine,
            }
        if self.profile is not None:
            out["points"] = [
                {k: getattr(p, k) for k in ("batch_size", "p50_ms", "p99_ms", "items_per_s")}
                for p in self.profile.points
            ]
        return out


def over_max_drop(variants: Sequence[Variant], max_drop: float | None) -> list[Variant]:
    """The variants that lost more quality than ``max_drop`` (none when it is not set)."""
    if max_drop is None:
        return []
    return [v for v in variants if v.quality is not None and v.quality.drop > max_drop]


def timed(model: Model, items: list[Item], target: Target, timing: Timing) -> Profile:
    sizes = sorted({1, timing.batch_size})
    return profile_model(
        model,
        items,
        sizes,
        warmup=timing.warmup,
        min_repeats=timing.min_repeats,
        min_seconds=timing.min_seconds,
        device=target.device,
        threads=target.threads,
        progress=False,
    )


class _Steps:
    def __init__(self, bar: Any, total: int, label: str) -> None:
        self.bar = bar
        self.task = bar.add_task(label, total=total) if bar is not None else None
        self.started = False

    def __call__(self, description: str) -> None:
        if self.bar is None:
            return
        if self.started:
            self.bar.advance(self.task)
        self.started = True
        self.bar.update(self.task, description=description)


class step_progress:  # a context manager, named like rich's Progress it wraps
    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label
        self.bar: Any = None

    def __enter__(self) -> _Steps:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True
            )
            self.bar.__enter__()
        return _Steps(self.bar, self.total, self.label)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


__all__ = ["Timing", "Variant", "over_max_drop", "step_progress", "timed"]
