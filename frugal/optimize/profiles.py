"""Reading the profile JSON that ``frugal profile`` writes (format ``frugal-profile/1``).

``plan`` and ``check`` only read profiles, so this reader needs no runtime and no torch: a CI job
can price a config from its committed profiles alone. Unknown keys are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.accounting.catalog import InstanceType
from frugal.errors import InvalidInput

PROFILE_FORMAT = "frugal-profile/1"


@dataclass(frozen=True, slots=True)
class PointRecord:
    """One measured batch size of one worker (slot): latency of ``predict_batch`` and items/s."""

    batch_size: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    items_per_s: float
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """A model measured on one kind of hardware by one worker using ``threads`` threads."""

    file: str
    model_name: str
    model_version: str
    model_sha256: str
    model_path: str
    runtime: str
    device: str
    hardware_class: str  # "cpu" or "gpu:<short name>", e.g. "gpu:T4"
    cpu_model: str
    gpu_name: str | None
    threads: int
    points: tuple[PointRecord, ...]  # sorted by batch size
    slo_ms: float | None = None
    suggested_max_wait_ms: float | None = None

    def point_at_most(self, batch_size: int) -> PointRecord:
        """The largest measured batch <= ``batch_size`` (the smallest if none is): a batch size
        that was not measured is priced at a measured one, never at an interpolated guess."""
        below = [p for p in self.points if p.batch_size <= batch_size]
        return below[-1] if below else self.points[0]

    @property
    def batch1(self) -> PointRecord:
        return self.points[0]

    def matches(self, instance: InstanceType) -> bool:
        """A ``cpu`` profile stands for CPU instances, ``gpu:T4`` for instances with T4s, etc."""
        return hardware_class_of(instance) == self.hardware_class or (
            instance.gpu is not None
            and self.hardware_class.startswith("gpu:")
            and instance.gpu.startswith(self.hardware_class[4:] + "-")
        )


def hardware_class_of(instance: InstanceType) -> str:
    """``cpu`` for instances without GPUs, else ``gpu:<the catalog's gpu name>``."""
    if instance.gpus == 0 or not instance.gpu:
        return "cpu"
    return f"gpu:{instance.gpu}"


def profile_command(profile: ProfileRecord, hardware_class: str) -> str:
    """The command that measures this profile's model on hardware of ``hardware_class``."""
    device = "cpu" if hardware_class == "cpu" else "cuda"
    slug = hardware_class.replace("gpu:", "gpu-").lower()
    slo = f" --slo-ms {profile.slo_ms:g}" if profile.slo_ms else ""
    return (
        f"frugal profile {profile.model_path or profile.model_name} --device {device}"
        f" --threads {profile.threads}{slo} --out {profile.model_name}-{slug}.json"
    )


def read_profile(path: str | Path) -> ProfileRecord:
    """Read one profile JSON; any problem is an InvalidInput naming the file (exit 2)."""
    name = str(path)
    hint = f"re-run `frugal profile ... --out {name}`"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"{name}: profile not found", hint="take one with `frugal profile`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{name}: cannot read profile: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{name}: not JSON ({exc.msg} at line {exc.lineno})", hint=hint
        ) from None
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidInput(
            f"{name}: not a frugal profile (format is {found!r}, expected {PROFILE_FORMAT!r})",
            hint=hint,
        )
    try:
        return _parse(name, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: malformed profile: {_describe(exc)}", hint=hint) from None


def read_profiles(paths: Sequence[str | Path]) -> list[ProfileRecord]:
    return [read_profile(p) for p in paths]


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc)


def _number(value: Any, key: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key} must be > 0, got {value!r}")
    return float(value)


def _optional(value: Any, key: str) -> float | None:
    return None if value is None else _number(value, key, positive=False)


def _parse(file: str, data: dict[str, Any]) -> ProfileRecord:
    model, hardware = data["model"], data["hardware"]
    points = []
    for i, raw in enumerate(data["points"]):
        batch = raw["batch_size"]
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"points[{i}].batch_size must be an integer >= 1, got {batch!r}")
        points.append(
            PointRecord(
                batch_size=batch,
                p50_ms=_number(raw["p50_ms"], f"points[{i}].p50_ms"),
                p99_ms=_number(raw["p99_ms"], f"points[{i}].p99_ms"),
                mean_ms=_number(raw["mean_ms"], f"points[{i}].mean_ms"),
                items_per_s=_number(raw["items_per_s"], f"points[{i}].items_per_s"),
                peak_rss_mb=_optional(raw.get("peak_rss_mb"), f"points[{i}].peak_rss_mb"),
                peak_gpu_mb=_optional(raw.get("peak_gpu_mb"), f"points[{i}].peak_gpu_mb"),
            )
        )
    if not points:
        raise ValueError("`points` is empty")
    points.sort(key=lambda p: p.batch_size)
    if len({p.batch_size for p in points}) != len(points):
        raise ValueError("`points` lists a batch size twice")
    hardware_class = str(hardware["hardware_class"])
    if hardware_class != "cpu" and not (hardware_class.startswith("gpu:") and hardware_class[4:]):
        raise ValueError(
            f"hardware.hardware_class must be cpu or gpu:<name>, got {hardware_class!r}"
        )
    threads = data["threads"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    sha256 = str(model["sha256"]).lower()
    suggested = data.get("suggested") or {}
    return ProfileRecord(
        file=file,
        model_name=str(model["name"]),
        model_version=str(model.get("version", "")),
        model_sha256=sha256,
        model_path=str(model.get("path") or ""),
        runtime=str(model.get("runtime", "")),
        device=str(hardware.get("device", "cpu")),
        hardware_class=hardware_class,
        cpu_model=str(hardware.get("cpu_model") or ""),
        gpu_name=hardware.get("gpu_name"),
        threads=threads,
        points=tuple(points),
        slo_ms=_optional(data.get("slo_ms"), "slo_ms"),
        suggested_max_wait_ms=_optional(suggested.get("max_wait_ms"), "suggested.max_wait_ms"),
    )
