"""One instance type priced under plan's one latency rule (rule and table: plan.py).

``price_row`` takes an instance type and the profile of its hardware class to a ``PlanRow``:
the operating point the rule allows (a model batch, or an end-to-end concurrency level), the
replica's capacity (``throughput.py``), dollars (``costing.py``) and, for a burstable type, its
CPU credits (``burstable.py``); or the reason it is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from frugal.accounting.catalog import InstanceType
from frugal.errors import InvalidInput
from frugal.optimize.burstable import price_burstable
from frugal.optimize.costing import Projection, project_cost
from frugal.optimize.endtoend import HttpLevel
from frugal.optimize.profile import ProfilePoint
from frugal.optimize.profiles import ProfileRecord
from frugal.optimize.serverless import DEFAULT_KEEP_WARM_S
from frugal.optimize.throughput import END_TO_END, MODEL_ONLY, replica_throughput

PROVIDERS = ("aws", "gcp", "azure", "all")
Status = Literal["ok", "over budget", "cannot meet SLO", "too small", "excluded"]


@dataclass(frozen=True, slots=True)
class PlanInputs:
    qps: float
    slo_ms: float
    headroom: float = 0.7
    budget_usd_month: float | None = None
    provider: str = "all"
    max_wait_ms: float = 2.0
    keep_warm_s: float = DEFAULT_KEEP_WARM_S  # how long a serverless environment stays warm

    def __post_init__(self) -> None:
        if self.qps <= 0:
            raise InvalidInput(f"--qps must be > 0, got {self.qps:g}", field="qps")
        if self.slo_ms <= 0:
            raise InvalidInput(f"--slo-ms must be > 0, got {self.slo_ms:g}", field="slo_ms")
        if not 0 < self.headroom <= 1:
            raise InvalidInput(f"--headroom must be in (0, 1], got {self.headroom:g}")
        if self.budget_usd_month is not None and self.budget_usd_month <= 0:
            raise InvalidInput("--budget-usd-month must be > 0")
        if self.max_wait_ms < 0:
            raise InvalidInput("--max-wait-ms must be >= 0")
        if self.keep_warm_s <= 0:
            raise InvalidInput("--keep-warm-s must be > 0", field="keep_warm_s")
        if self.provider not in PROVIDERS:
            raise InvalidInput(f"--provider must be one of {', '.join(PROVIDERS)}")


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One priced (or refused) instance type."""

    instance: str
    provider: str
    hardware_class: str
    price_usd_per_hour: float
    profile: str
    status: Status
    reason: str = ""
    point: ProfilePoint | None = None  # the batch its model bound is taken at
    latency_bound_ms: float | None = None
    projection: Projection | None = None
    figures: str = MODEL_ONLY  # or END_TO_END: which figures priced it
    level: HttpLevel | None = None  # end to end: the concurrency level it runs at
    credit_note: str = ""  # a burstable type: how its CPU credits were priced

    @property
    def usd_per_month(self) -> float:
        return self.projection.usd_per_month if self.projection is not None else float("inf")


def choose_batch(
    profile: ProfileRecord, slo_ms: float, max_wait_ms: float
) -> tuple[ProfilePoint | None, float]:
    """The measured batch with the most items/s whose bound ``2 x p99 + max_wait`` fits the SLO
    (the smaller batch on a tie), and that bound; (None, batch-1 bound) when none fits."""
    fits = [p for p in profile.points if 2 * p.p99_ms + max_wait_ms <= slo_ms]
    if not fits:
        return None, 2 * profile.smallest.p99_ms + max_wait_ms
    best = max(fits, key=lambda p: (p.items_per_s, -p.batch_size))
    return best, 2 * best.p99_ms + max_wait_ms


def slots_for(instance: InstanceType, profile: ProfileRecord, overrides: Mapping[str, int]) -> int:
    """A GPU type has one slot per GPU; a CPU type one per ``threads`` vCPUs the profile used."""
    if instance.name in overrides:
        return overrides[instance.name]
    if instance.gpus > 0:
        return instance.gpus
    return instance.vcpus // profile.threads


def _operating_point(
    profile: ProfileRecord, inputs: PlanInputs
) -> tuple[ProfilePoint | None, HttpLevel | None, float, str]:
    """(model batch, end-to-end level, latency bound, why not) under the one latency rule."""
    http = profile.http
    if http is None:
        point, bound = choose_batch(profile, inputs.slo_ms, inputs.max_wait_ms)
        if point is not None:
            return point, None, bound, ""
        b1 = profile.smallest
        why = (
            f"batch-{b1.batch_size} p99 {b1.p99_ms:.3g} ms > SLO {inputs.slo_ms:g} ms"
            if b1.p99_ms > inputs.slo_ms
            else f"batch-{b1.batch_size} bound 2 x {b1.p99_ms:.3g} + {inputs.max_wait_ms:g} ms "
            f"wait = {bound:.3g} ms > SLO {inputs.slo_ms:g} ms"
        )
        return None, None, bound, why
    level = http.best_within(inputs.slo_ms)
    if level is None:
        fastest = http.fastest
        why = (
            f"end-to-end p99 {fastest.p99_ms:.3g} ms at concurrency {fastest.concurrency} "
            f"> SLO {inputs.slo_ms:g} ms"
        )
        return None, None, fastest.p99_ms, why
    point = profile.point_at_most(http.max_batch_size) or profile.smallest
    return point, level, level.p99_ms, ""


def price_row(
    instance: InstanceType, profile: ProfileRecord, slots: int, inputs: PlanInputs
) -> PlanRow:
    row = PlanRow(
        instance=instance.name,
        provider=instance.provider,
        hardware_class=profile.hardware_class,
        price_usd_per_hour=instance.price_usd_per_hour,
        profile=profile.file,
        status="ok",
        figures=END_TO_END if profile.http is not None else MODEL_ONLY,
    )
    if slots < 1:
        return dataclasses.replace(
            row,
            status="too small",
            reason=f"{instance.vcpus} vCPU(s) < the profile's {profile.threads} threads",
        )
    point, level, bound, why = _operating_point(profile, inputs)
    if point is None:
        return dataclasses.replace(row, status="cannot meet SLO", reason=why)
    t = replica_throughput(profile, point, vcpus=instance.vcpus, slots=slots, level=level)
    projection: Projection | None = project_cost(
        price_usd_per_hour=instance.price_usd_per_hour,
        slots=slots,
        batch_size=point.batch_size,
        items_per_s_per_slot=point.items_per_s,
        qps=inputs.qps,
        headroom=inputs.headroom,
        max_requests_per_s=t.server_cpu_requests_per_s,
    )
    assert projection is not None
    cpu_s = t.cpu_s_per_request or profile.threads / point.items_per_s
    credits = price_burstable(instance, projection, cpu_s)
    row = dataclasses.replace(row, point=point, level=level, latency_bound_ms=bound,
                              credit_note=credits.note)  # fmt: skip
    projection = credits.projection
    if projection is None:
        return dataclasses.replace(row, status="excluded", reason=credits.note)
    budget = inputs.budget_usd_month
    over = budget is not None and projection.usd_per_month > budget
    return dataclasses.replace(
        row,
        status="over budget" if over else "ok",
        reason=f"${projection.usd_per_month:,.2f} > ${budget:,.2f}/month" if over else "",
        projection=projection,
    )


__all__ = ["PROVIDERS", "PlanInputs", "PlanRow", "Status", "choose_batch", "price_row", "slots_for"]
