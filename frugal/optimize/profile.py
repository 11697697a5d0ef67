"""Latency and throughput of one model worker across batch sizes, and the batching it suggests.

A profile measures ONE worker (one slot) running ``predict_batch`` with ``threads`` intra-op
threads on the recorded hardware; ``frugal plan`` and ``frugal check`` read it (the JSON format is
``frugal-profile/1``, see docs/profile.md).

The suggestion:

- ``knee_batch_size``: the smallest batch reaching >= 90% of the peak items/s. Past the knee, a
  bigger batch buys little throughput and costs latency.
- ``max_batch_within_slo``: with an SLO, the largest measured batch whose p99 <= the SLO.
- ``max_batch_size``: the knee, capped by the SLO batch (1 when no batch meets the SLO).
- ``max_wait_ms``: how long a free worker waits for company (docs/batching.md). The arrival rate
  is unknown here, so the time to fill a batch is too. The rule: without an SLO, frugal's default
  2 ms; with one, half of the headroom the SLO leaves after the chosen batch's p99 (the other half
  is for queueing behind a running batch), and no more than that batch's p99 (waiting longer than
  a batch takes to run gains little: the next batch fills while this one runs); at least 0.1 ms.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from frugal.errors import InvalidInput
from frugal.optimize.endtoend import HttpProfile
from frugal.runtimes.base import Model
from frugal.types import Item

FORMAT = "frugal-profile/1"
KNEE_SHARE = 0.9
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_MAX_WAIT_MS = 2.0
MIN_MAX_WAIT_MS = 0.1
_DISTINCT_BATCHES = 8  # batches cycled through, so repeats do not time one cached input
# Short names the planner matches against the catalog's `gpu` (longest first: A10G before A10).
_GPU_NAMES = ("H200", "H100", "A100", "A10G", "A10", "L40S", "L4", "T4", "V100", "K80", "P100")


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    """One batch size's measurement; ``peak_rss_mb`` is the process's peak so far (VmHWM)."""

    batch_size: int
    repeats: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    items_per_s: float
    peak_rss_mb: float
    peak_gpu_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A model's points on one worker, and the batching settings they suggest.

    ``model_load_s`` is how long loading the model took (a serverless cold start's init time);
    ``http`` is the end-to-end section of ``frugal profile --http``. Both are absent from files
    written before they existed, and such files still load.
    """

    model: dict[str, Any]
    hardware: dict[str, Any]
    threads: int
    points: tuple[ProfilePoint, ...]
    slo_ms: float | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    model_load_s: float | None = None
    http: HttpProfile | None = None

    @property
    def knee_batch_size(self) -> int:
        return knee_batch_size(self.points)

    @property
    def max_batch_within_slo(self) -> int | None:
        return max_batch_within_slo(self.points, self.slo_ms)

    @property
    def suggested(self) -> dict[str, float | int]:
        return suggest_batching(self.points, self.slo_ms)

    def point(self, batch_size: int) -> ProfilePoint | None:
        return next((p for p in self.points if p.batch_size == batch_size), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "model": self.model,
            "hardware": self.hardware,
            "threads": self.threads,
            "points": [asdict(p) for p in self.points],
            "knee_batch_size": self.knee_batch_size,
            "slo_ms": self.slo_ms,
            "max_batch_within_slo": self.max_batch_within_slo,
            "suggested": self.suggested,
            "model_load_s": self.model_load_s,
            "http": self.http.to_dict() if self.http is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_json(cls, path: Path) -> Profile:
        """Read a profile file; anything but ``frugal-profile/1`` is refused naming the file."""
        hint = "take one with `frugal profile MODEL --out FILE`"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"{path}: file not found", hint=hint) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{path}: not a readable JSON file: {exc}", hint=hint) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise InvalidInput(
                f"{path}: not a frugal profile (format {found!r}, expected {FORMAT!r})", hint=hint
            )
        try:
            points = tuple(
                ProfilePoint(**{k: p[k] for k in ProfilePoint.__dataclass_fields__ if k in p})
                for p in data["points"]
            )
            return cls(
                model=dict(data["model"]),
                hardware=dict(data["hardware"]),
                threads=int(data["threads"]),
                points=points,
                slo_ms=data.get("slo_ms"),
                created_at=str(data["created_at"]),
                model_load_s=_load_seconds(data.get("model_load_s")),
                http=HttpProfile.from_dict(data["http"]) if data.get("http") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing key {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
            raise InvalidInput(f"{path}: malformed profile: {what}", hint=hint) from None


def _load_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"model_load_s must be a number >= 0, got {value!r}")
    return float(value)


def profile_model(
    model: Model,
    items: Sequence[Item],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    *,
    warmup: int = 3,
    min_repeats: int = 20,
    min_seconds: float = 0.5,
    device: str = "cpu",
    progress: bool = True,
    threads: int = 1,
    slo_ms: float | None = None,
    record: dict[str, Any] | None = None,
    model_load_s: float | None = None,
) -> Profile:
    """Time ``predict_batch`` at each batch size (items cycled to fill the batch)."""
    if not items:
        raise InvalidInput("no sample items to profile with")
    sizes = sorted(set(batch_sizes))
    if not sizes or sizes[0] < 1:
        raise InvalidInput("batch sizes must be whole numbers >= 1")
    points = []
    with _progress(progress) as bar:
        task = bar.add_task(f"profiling {model.ref.key}", total=len(sizes)) if bar else None
        for size in sizes:
            if bar is not None and task is not None:
                bar.update(task, description=f"profiling {model.ref.key} at batch {size}")
            batches = _batches(items, size)
            points.append(
                measure_batch(
                    model,
                    batches,
                    warmup=warmup,
                    min_repeats=min_repeats,
                    min_seconds=min_seconds,
                    device=device,
                )
            )
            if bar is not None and task is not None:
                bar.advance(task)
    ref = model.ref
    return Profile(
        model=record or {"name": ref.name, "version": ref.version, "sha256": ref.sha256},
        hardware=hardware_record(device),
        threads=threads,
        points=tuple(points),
        slo_ms=slo_ms,
        model_load_s=None if model_load_s is None else round(model_load_s, 4),
    )


def measure_batch(
    model: Model,
    batches: Sequence[Sequence[Item]],
    *,
    warmup: int,
    min_repeats: int,
    min_seconds: float,
    device: str = "cpu",
) -> ProfilePoint:
    """The measuring loop: warm up, then repeat until both ``min_repeats`` and ``min_seconds``."""
    size = len(batches[0])
    for i in range(warmup):
        model.predict_batch(batches[i % len(batches)])
    cuda = device == "cuda"
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    durations: list[float] = []
    started = time.perf_counter()
    while len(durations) < min_repeats or time.perf_counter() - started < min_seconds:
        batch = batches[len(durations) % len(batches)]
        t0 = time.perf_counter()
        model.predict_batch(batch)
        if cuda:
            torch.cuda.synchronize()
        durations.append(time.perf_counter() - t0)
    ms = np.asarray(durations) * 1000.0
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return ProfilePoint(
        batch_size=size,
        repeats=len(durations),
        p50_ms=round(float(np.percentile(ms, 50)), 4),
        p99_ms=round(float(np.percentile(ms, 99)), 4),
        mean_ms=round(float(ms.mean()), 4),
        items_per_s=round(size * len(durations) / float(np.sum(durations)), 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
        peak_gpu_mb=None if peak_gpu_mb is None else round(peak_gpu_mb, 1),
    )


def knee_batch_size(points: Sequence[ProfilePoint], share: float = KNEE_SHARE) -> int:
    """The smallest batch reaching ``share`` of the peak items/s."""
    peak = max(p.items_per_s for p in points)
    return min(p.batch_size for p in points if p.items_per_s >= share * peak)


def max_batch_within_slo(points: Sequence[ProfilePoint], slo_ms: float | None) -> int | None:
    """The largest measured batch whose p99 is within the SLO (None: no SLO, or none is)."""
    if slo_ms is None:
        return None
    within = [p.batch_size for p in points if p.p99_ms <= slo_ms]
    return max(within) if within else None


def suggest_batching(
    points: Sequence[ProfilePoint], slo_ms: float | None
) -> dict[str, float | int]:
    """``max_batch_size`` and ``max_wait_ms`` for frugal.yaml (rule in the module docstring)."""
    knee = knee_batch_size(points)
    if slo_ms is None:
        return {"max_batch_size": knee, "max_wait_ms": DEFAULT_MAX_WAIT_MS}
    within = max_batch_within_slo(points, slo_ms)
    batch = 1 if within is None else min(knee, within)
    chosen = next((p for p in points if p.batch_size == batch), None)
    p99 = chosen.p99_ms if chosen is not None else min(p.p99_ms for p in points)
    wait = min(0.5 * (slo_ms - p99), p99)
    return {"max_batch_size": batch, "max_wait_ms": round(max(MIN_MAX_WAIT_MS, wait), 2)}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB: a process peak, not a delta."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def hardware_record(device: str) -> dict[str, Any]:
    """CPU model and usable cores, and the GPU's name and memory when profiling on CUDA."""
    gpu_name: str | None = None
    gpu_memory_mb: float | None = None
    if device == "cuda":
        import torch

        gpu_name = torch.cuda.get_device_name()
        gpu_memory_mb = round(torch.cuda.get_device_properties(0).total_memory / 2**20, 1)
    return {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)),
        "gpu_name": gpu_name,
        "gpu_memory_mb": gpu_memory_mb,
        "hardware_class": hardware_class(gpu_name),
    }


def hardware_class(gpu_name: str | None, machine: str | None = None) -> str:
    """``cpu`` (x86-64), ``cpu:arm64`` (Graviton and other arm64), or ``gpu:<short name>``
    (``NVIDIA H100 80GB HBM3`` -> ``gpu:H100``). An arm64 core is not priced from x86 timings."""
    if gpu_name is None:
        import platform

        arch = (machine or platform.machine()).lower()
        return "cpu:arm64" if arch in ("aarch64", "arm64") else "cpu"
    words = gpu_name.upper().replace("-", " ").split()
    for short in _GPU_NAMES:
        # "H100" matches H100 and H100PCIE-like words, but "A10" must not match "A10G"
        if any(w == short or (w.startswith(short) and not w[len(short)].isalpha()) for w in words):
            return f"gpu:{short}"
    rest = [w for w in gpu_name.split() if w.upper() not in ("NVIDIA", "TESLA", "GEFORCE")]
    return f"gpu:{rest[0] if rest else gpu_name}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def _batches(items: Sequence[Item], size: int) -> list[list[Item]]:
    count = min(_DISTINCT_BATCHES, max(1, len(items) // size))
    return [[items[(k * size + j) % len(items)] for j in range(size)] for k in range(count)]


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True
    )


__all__ = [
    "DEFAULT_BATCH_SIZES",
    "FORMAT",
    "Profile",
    "ProfilePoint",
    "cpu_model",
    "hardware_class",
    "hardware_record",
    "knee_batch_size",
    "max_batch_within_slo",
    "measure_batch",
    "peak_rss_mb",
    "profile_model",
    "suggest_batching",
]
