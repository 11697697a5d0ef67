"""The planner's view of a profile JSON (``frugal-profile/1``, written by ``frugal profile``).

The file is read by ``Profile.from_json`` (frugal/optimize/profile.py), the one reader of the
format; this module checks what pricing relies on (positive times and rates, a hardware class,
threads) and matches the profile to catalog instance types. It loads no model runtime, so a CI
job can price a config from its committed profiles alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.accounting.catalog import InstanceType
from frugal.errors import InvalidInput
from frugal.optimize.endtoend import HttpProfile
from frugal.optimize.profile import Profile, ProfilePoint


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
    hardware_class: str  # "cpu" (x86-64), "cpu:arm64" or "gpu:<short name>", e.g. "gpu:T4"
    cpu_model: str
    gpu_name: str | None
    threads: int
    points: tuple[ProfilePoint, ...]  # sorted by batch size
    slo_ms: float | None = None
    model_load_s: float | None = None  # None: a profile written before load times were kept
    http: HttpProfile | None = None  # the end-to-end section (frugal profile --http)

    def point_at_most(self, batch_size: int) -> ProfilePoint | None:
        """The largest measured batch <= ``batch_size``: a batch size that was not measured is
        priced at a smaller measured one (fewer items/s), never at an interpolated guess."""
        below = [p for p in self.points if p.batch_size <= batch_size]
        return below[-1] if below else None

    @property
    def smallest(self) -> ProfilePoint:
        return self.points[0]

    @property
    def batch1(self) -> ProfilePoint | None:
        """What one request alone costs; a profile taken with --batch-sizes may lack it."""
        return self.points[0] if self.points[0].batch_size == 1 else None

    def matches(self, instance: InstanceType) -> bool:
        """A ``cpu`` profile stands for CPU instances, ``gpu:T4`` for instances with T4s, etc."""
        return hardware_class_of(instance) == self.hardware_class or (
            instance.gpu is not None
            and self.hardware_class.startswith("gpu:")
            and instance.gpu.startswith(self.hardware_class[4:] + "-")
        )


def hardware_class_of(instance: InstanceType) -> str:
    """``gpu:<the catalog's gpu name>`` for GPU types, the accelerator's own name for others
    (``inferentia2``), ``cpu:arm64`` for arm64 CPU types (Graviton), else ``cpu`` (x86-64)."""
    if instance.gpus > 0 and instance.gpu:
        return f"gpu:{instance.gpu}"
    if instance.accelerator:
        return instance.accelerator
    return "cpu" if instance.arch == "x86_64" else f"cpu:{instance.arch}"


def profile_command(profile: ProfileRecord, hardware_class: str, slo_ms: float) -> str:
    """The command that measures this profile's model on hardware of ``hardware_class``, or why
    no frugal runtime can (an accelerator such as Inferentia2 needs its own compiler)."""
    if not (hardware_class.startswith(("cpu", "gpu:"))):
        return (
            f"no frugal runtime runs on {hardware_class} yet (it needs the model compiled with "
            "the vendor's SDK, e.g. AWS Neuron); not priced"
        )
    device = "cuda" if hardware_class.startswith("gpu:") else "cpu"
    slug = hardware_class.replace(":", "-").lower()
    where = f"on an {hardware_class[4:]} machine: " if hardware_class.startswith("cpu:") else ""
    slo = f" --slo-ms {slo_ms:g}"
    return (
        f"{where}frugal profile {profile.model_path or profile.model_name} --device {device}"
        f" --threads {profile.threads}{slo} --out {profile.model_name}-{slug}.json"
    )


def read_profile(path: str | Path) -> ProfileRecord:
    """Read one profile JSON; any problem is an InvalidInput naming the file (exit 2)."""
    profile = Profile.from_json(Path(path))
    try:
        return _record(str(path), profile)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{path}: malformed profile: {_describe(exc)}",
            hint=f"re-run `frugal profile ... --out {path}`",
        ) from None


def read_profiles(paths: Sequence[str | Path]) -> list[ProfileRecord]:
    return [read_profile(p) for p in paths]


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc)


def _check(value: Any, key: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if value <= 0 and not optional:
        raise ValueError(f"{key} must be > 0, got {value!r}")


def _record(file: str, profile: Profile) -> ProfileRecord:
    model, hardware = profile.model, profile.hardware
    for i, p in enumerate(profile.points):
        if not isinstance(p.batch_size, int) or isinstance(p.batch_size, bool) or p.batch_size < 1:
            raise ValueError(
                f"points[{i}].batch_size must be an integer >= 1, got {p.batch_size!r}"
            )
        for key in ("p50_ms", "p99_ms", "mean_ms", "items_per_s"):
            _check(getattr(p, key), f"points[{i}].{key}")
        _check(p.peak_rss_mb, f"points[{i}].peak_rss_mb", optional=True)
    if not profile.points:
        raise ValueError("`points` is empty")
    points = tuple(sorted(profile.points, key=lambda p: p.batch_size))
    if len({p.batch_size for p in points}) != len(points):
        raise ValueError("`points` lists a batch size twice")
    hardware_class = str(hardware["hardware_class"])
    if hardware_class != "cpu" and not (
        hardware_class.startswith(("gpu:", "cpu:")) and hardware_class[4:]
    ):
        raise ValueError(
            f"hardware.hardware_class must be cpu, cpu:<arch> or gpu:<name>, got {hardware_class!r}"
        )
    if profile.threads < 1:
        raise ValueError(f"threads must be >= 1, got {profile.threads}")
    _check(profile.slo_ms, "slo_ms", optional=True)
    return ProfileRecord(
        file=file,
        model_name=str(model["name"]),
        model_version=str(model.get("version", "")),
        model_sha256=str(model["sha256"]).lower(),
        model_path=str(model.get("path") or ""),
        runtime=str(model.get("runtime", "")),
        device=str(hardware.get("device", "cpu")),
        hardware_class=hardware_class,
        cpu_model=str(hardware.get("cpu_model") or ""),
        gpu_name=hardware.get("gpu_name"),
        threads=profile.threads,
        points=points,
        slo_ms=profile.slo_ms,
        model_load_s=profile.model_load_s,
        http=profile.http,
    )
