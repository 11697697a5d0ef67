"""Hand-made profile JSON for the plan and check tests: numbers small enough to check by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHA = "ab" * 32


def point(batch: int, p99_ms: float, items_per_s: float, **extra: Any) -> dict[str, Any]:
    """One measured batch size; p50 and mean are derived from p99 (the planner reads p99 and
    items/s, serverless reads mean)."""
    return {
        "batch_size": batch,
        "repeats": 50,
        "p50_ms": p99_ms / 2,
        "p99_ms": p99_ms,
        "mean_ms": extra.pop("mean_ms", p99_ms / 2),
        "items_per_s": items_per_s,
        "peak_rss_mb": extra.pop("peak_rss_mb", 200.0),
        "peak_gpu_mb": None,
        **extra,
    }


def profile(
    points: list[dict[str, Any]],
    *,
    hardware_class: str = "cpu",
    threads: int = 1,
    name: str = "digits",
    sha256: str = SHA,
) -> dict[str, Any]:
    gpu = hardware_class.startswith("gpu:")
    return {
        "format": "frugal-profile/1",
        "created_at": "2026-11-23T12:00:00+00:00",
        "model": {"name": name, "version": "1", "runtime": "sklearn",
                  "path": "models/digits-lr.joblib", "sha256": sha256, "size_bytes": 1234},
        "hardware": {"device": "cuda" if gpu else "cpu", "cpu_model": "Test CPU", "cpu_cores": 2,
                     "gpu_name": "NVIDIA T4" if gpu else None, "gpu_memory_mb": None,
                     "hardware_class": hardware_class},
        "threads": threads,
        "points": points,
        "knee_batch_size": points[-1]["batch_size"],
        "slo_ms": None,
        "max_batch_within_slo": None,
        "suggested": {"max_batch_size": points[-1]["batch_size"], "max_wait_ms": 2.0},
    }  # fmt: skip


def level(c: int, rps: float, p99: float, cpu_ms: float, errors: int = 0) -> dict[str, Any]:
    """One concurrency level of an end-to-end (``--http``) section."""
    return {"concurrency": c, "seconds": 5.0, "requests": int(rps * 5), "errors": errors,
            "req_per_s": rps, "p50_ms": p99 / 3, "p99_ms": p99, "mean_ms": p99 / 2,
            "server_cpu_s_per_request": cpu_ms / 1000, "server_cores_busy": rps * cpu_ms / 1000,
            "client_cpu_s_per_request": 0.00005}  # fmt: skip


def end_to_end(base: dict[str, Any], *levels: dict[str, Any], load_s: float = 1.5) -> Any:
    """``base`` with an end-to-end section of these levels and a model load time."""
    http = {"path": "/v1/endpoints/digits/predict", "server_workers": 1, "max_batch_size": 32,
            "max_wait_ms": 2.0, "cpu_model": "Test CPU", "cpu_cores": 2, "client": "test",
            "levels": list(levels)}  # fmt: skip
    return {**base, "model_load_s": load_s, "http": http}


# CPU: batch 8 is 4x batch 1; batch 32 is faster still but its p99 is long.
CPU = profile([point(1, 1.0, 1000.0), point(8, 4.0, 4000.0), point(32, 30.0, 6000.0)])
# T4: slow at batch 1 (8 ms launch), very fast at batch 64.
T4 = profile([point(1, 8.0, 125.0), point(64, 12.0, 50_000.0)], hardware_class="gpu:T4")


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
