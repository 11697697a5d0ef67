"""How many requests per second one replica serves, from a profile: the figure plan and check
multiply by replicas.

A model-only profile knows the model: ``slots x items/s`` at a batch size. An end-to-end profile
(``http`` section, ``frugal profile --http``) also knows what the whole server spends per
request, so a replica is bounded by both:

    model bound       = slots x items/s(batch)
    server CPU bound  = vcpus / server_cpu_s_per_request(level)
    requests/s        = min(model bound, server CPU bound)

The server's CPU per request already contains the model's own CPU (the model runs inside the
server process); it falls as concurrency rises (bigger batches share the fixed costs), so the
level matters: ``frugal plan`` passes the level that meets its SLO, and without one the level
with the most requests/s is used (what ``frugal check`` would price). The CPU bound assumes the
server keeps every vCPU busy, i.e. enough ``frugal serve --workers`` processes (one process is
held near one core by Python's GIL; the section records the cores it kept busy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from frugal.optimize.endtoend import HttpLevel
from frugal.optimize.profile import ProfilePoint
from frugal.optimize.profiles import ProfileRecord

Figures = Literal["end-to-end profile", "model-only profile"]
END_TO_END: Figures = "end-to-end profile"
MODEL_ONLY: Figures = "model-only profile"


@dataclass(frozen=True, slots=True)
class ReplicaThroughput:
    """One replica at full use, and which figures and bound gave it."""

    figures: Figures
    requests_per_s: float  # min of the bounds below
    model_requests_per_s: float  # slots x items/s at ``batch_size``
    server_cpu_requests_per_s: float | None  # vcpus / CPU s per request (end-to-end only)
    batch_size: int
    level: HttpLevel | None  # the end-to-end level whose CPU per request was used

    @property
    def limited_by(self) -> str:
        cpu = self.server_cpu_requests_per_s
        return "server CPU" if cpu is not None and cpu < self.model_requests_per_s else "model"

    @property
    def cpu_s_per_request(self) -> float | None:
        """The server's CPU seconds per request (None for a model-only profile)."""
        return self.level.server_cpu_s_per_request if self.level is not None else None


def replica_throughput(
    profile: ProfileRecord,
    point: ProfilePoint,
    *,
    vcpus: float,
    slots: float,
    level: HttpLevel | None = None,
) -> ReplicaThroughput:
    """A replica's requests/s at ``point``'s batch: end-to-end figures when the profile has
    them (``level``, default its peak level), else the model's alone.

    For ``frugal check``: ``t = replica_throughput(profile, point, vcpus=..., slots=...)``, then
    ``project_cost(..., max_requests_per_s=t.server_cpu_requests_per_s)``.
    """
    model = slots * point.items_per_s
    if profile.http is None:
        return ReplicaThroughput(MODEL_ONLY, model, model, None, point.batch_size, None)
    chosen = level if level is not None else profile.http.peak
    cpu_bound = vcpus / chosen.server_cpu_s_per_request
    return ReplicaThroughput(
        figures=END_TO_END,
        requests_per_s=min(model, cpu_bound),
        model_requests_per_s=model,
        server_cpu_requests_per_s=cpu_bound,
        batch_size=point.batch_size,
        level=chosen,
    )


__all__ = ["END_TO_END", "MODEL_ONLY", "Figures", "ReplicaThroughput", "replica_throughput"]
