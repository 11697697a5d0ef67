"""The end-to-end (``http``) section of a profile: the real server, driven over HTTP.

A model-only profile times ``predict_batch``; a server also parses HTTP and JSON, admits,
batches, writes the ledger and counts metrics, and for a small model that is most of the CPU.
``frugal profile --http`` starts ``frugal serve`` on the model and records, per concurrency,
answers per second, client p50/p99 and the server's CPU seconds per request. ``frugal plan``
bounds a replica by that CPU; this module is the section's format and the rules that pick a
level from it, with no I/O (``serve_profile.py`` measures it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HttpLevel:
    """One concurrency: what clients saw and what the server spent."""

    concurrency: int
    seconds: float
    requests: int
    errors: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_s_per_request: float  # the server's process tree only, never the load generator
    server_cores_busy: float  # its CPU seconds over the window's wall seconds
    client_cpu_s_per_request: float  # the load generator's, to see when it is the bottleneck

    @property
    def clean(self) -> bool:
        """Every request of the window was answered 200 (an overloaded level is not a figure)."""
        return self.errors == 0 and self.requests > 0


@dataclass(frozen=True, slots=True)
class OpenLevel:
    """One rate of Poisson arrivals (``frugal profile --http --rates``): what the server does
    with traffic that arrives whether or not it has answered, which a closed loop never sends.

    Latencies count from each request's scheduled time; ``*_from_send`` from when it was really
    written (the load generator's own delay, ``send_lag_p99_ms``, left out)."""

    rate_per_s: float  # offered
    seconds: float
    requests: int  # answered 200
    errors: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    p50_ms_from_send: float
    p99_ms_from_send: float
    send_lag_p99_ms: float
    server_cpu_s_per_request: float
    server_cores_busy: float
    client_cpu_s_per_request: float

    @property
    def clean(self) -> bool:
        return self.errors == 0 and self.requests > 0


@dataclass(frozen=True, slots=True)
class HttpProfile:
    """The levels of one run, and the server settings and machine they were measured on."""

    levels: tuple[HttpLevel, ...]  # by concurrency
    path: str  # the URL path driven, e.g. /v1/endpoints/digits/predict
    server_workers: int  # frugal serve --workers
    max_batch_size: int  # the model's batching while measured
    max_wait_ms: float
    cpu_model: str  # where it ran (the model-only points may come from another run)
    cpu_cores: int
    client: str
    measured_at: str = ""  # ISO time: the section may be newer than the model-only points
    # Open-loop levels by rate (empty: a profile taken without --rates, or before they existed).
    open_levels: tuple[OpenLevel, ...] = ()

    @property
    def peak(self) -> HttpLevel:
        """The clean level with the most answers per second (the first level if none is clean)."""
        clean = [lv for lv in self.levels if lv.clean]
        if not clean:
            return self.levels[0]
        return max(clean, key=lambda lv: (lv.req_per_s, -lv.concurrency))

    def best_within(self, slo_ms: float) -> HttpLevel | None:
        """The clean level with the most answers per second whose p99 is within the SLO."""
        fits = [lv for lv in self.levels if lv.clean and lv.p99_ms <= slo_ms]
        return max(fits, key=lambda lv: (lv.req_per_s, -lv.concurrency)) if fits else None

    @property
    def fastest(self) -> HttpLevel:
        """The clean level with the lowest p99 (why nothing fits an SLO)."""
        clean = [lv for lv in self.levels if lv.clean] or list(self.levels)
        return min(clean, key=lambda lv: lv.p99_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "server_workers": self.server_workers,
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "cpu_model": self.cpu_model,
            "cpu_cores": self.cpu_cores,
            "client": self.client,
            "measured_at": self.measured_at,
            "levels": [_rounded(asdict(lv)) for lv in self.levels],
            **(
                {"open_loop": [_rounded(asdict(lv)) for lv in self.open_levels]}
                if self.open_levels
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, data: Any) -> HttpProfile:
        """Parse and check the section; a bad one raises ValueError/KeyError/TypeError."""
        if not isinstance(data, dict):
            raise TypeError(f"`http` must be a mapping, got {type(data).__name__}")
        levels = []
        for i, raw in enumerate(data["levels"]):
            level = HttpLevel(**{k: raw[k] for k in HttpLevel.__dataclass_fields__})
            for key in ("seconds", "req_per_s", "p50_ms", "p99_ms", "mean_ms",
                        "server_cpu_s_per_request", "server_cores_busy",
                        "client_cpu_s_per_request"):  # fmt: skip
                value = getattr(level, key)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"http.levels[{i}].{key} must be a number, got {value!r}")
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"http.levels[{i}].{key} must be finite and >= 0")
            if level.clean and level.server_cpu_s_per_request <= 0:
                raise ValueError(f"http.levels[{i}].server_cpu_s_per_request must be > 0")
            if not isinstance(level.concurrency, int) or level.concurrency < 1:
                raise ValueError(f"http.levels[{i}].concurrency must be an integer >= 1")
            levels.append(level)
        if not levels:
            raise ValueError("`http.levels` is empty")
        open_levels = [_open_level(i, raw) for i, raw in enumerate(data.get("open_loop") or [])]
        return cls(
            levels=tuple(sorted(levels, key=lambda lv: lv.concurrency)),
            path=str(data["path"]),
            server_workers=int(data.get("server_workers", 1)),
            max_batch_size=int(data["max_batch_size"]),
            max_wait_ms=float(data.get("max_wait_ms", 0.0)),
            cpu_model=str(data.get("cpu_model") or ""),
            cpu_cores=int(data.get("cpu_cores") or 0),
            client=str(data.get("client") or ""),
            measured_at=str(data.get("measured_at") or ""),
            open_levels=tuple(sorted(open_levels, key=lambda lv: lv.rate_per_s)),
        )


def _open_level(i: int, raw: Any) -> OpenLevel:
    """One ``http.open_loop`` entry, checked like the closed levels."""
    if not isinstance(raw, dict):
        raise TypeError(f"http.open_loop[{i}] must be a mapping, got {type(raw).__name__}")
    level = OpenLevel(**{k: raw[k] for k in OpenLevel.__dataclass_fields__})
    for key in OpenLevel.__dataclass_fields__:
        value = getattr(level, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"http.open_loop[{i}].{key} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"http.open_loop[{i}].{key} must be finite and >= 0")
    if level.rate_per_s <= 0:
        raise ValueError(f"http.open_loop[{i}].rate_per_s must be > 0")
    if level.clean and level.server_cpu_s_per_request <= 0:
        raise ValueError(f"http.open_loop[{i}].server_cpu_s_per_request must be > 0")
    return level


def _rounded(level: dict[str, Any]) -> dict[str, Any]:
    """Four significant digits are more than the noise of a shared machine allows."""
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in level.items()}


__all__ = ["HttpLevel", "HttpProfile", "OpenLevel"]
