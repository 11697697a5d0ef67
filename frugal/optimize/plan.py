"""``frugal plan``: the cheapest instance type that serves a QPS within a latency SLO.

Only measured numbers are priced: an instance type is priced from a profile taken on its class
of hardware (``cpu`` profiles for CPU types, ``gpu:T4`` for T4 types, ...), and a type with no
such profile is listed with the command that would measure it, never given a guessed latency.

The batch size a type runs at is the measured batch with the most items/s whose latency bound
fits the SLO:

    2 x p99_ms(b) + max_wait_ms <= slo_ms

An item may wait up to ``max_wait_ms`` for its batch to fill, then for the batch already holding
its slot (up to one more p99), then for its own batch. Types where no batch fits (in particular
when batch-1 p99 alone is over the SLO) are "cannot meet SLO".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from frugal.accounting.catalog import InstanceType, ServerlessOffer
from frugal.config import InstanceConfig
from frugal.errors import InvalidInput
from frugal.optimize.costing import Projection, project_cost
from frugal.optimize.profile import ProfilePoint
from frugal.optimize.profiles import (
    ProfileRecord,
    hardware_class_of,
    profile_command,
)
from frugal.optimize.serverless import (
    BreakEven,
    ServerlessProjection,
    break_even,
    project_serverless,
)

PLAN_FORMAT = "frugal-plan/1"
PROVIDERS = ("aws", "gcp", "azure", "all")
Status = Literal["ok", "over budget", "cannot meet SLO", "too small"]


@dataclass(frozen=True, slots=True)
class PlanInputs:
    qps: float
    slo_ms: float
    headroom: float = 0.7
    budget_usd_month: float | None = None
    provider: str = "all"
    max_wait_ms: float = 2.0

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
    point: ProfilePoint | None = None  # the batch it runs at
    latency_bound_ms: float | None = None
    projection: Projection | None = None


@dataclass(frozen=True, slots=True)
class MissingProfile:
    """Instance types of one hardware class that no profile covers."""

    hardware_class: str
    instances: tuple[str, ...]
    command: str


@dataclass(frozen=True, slots=True)
class Plan:
    inputs: PlanInputs
    profiles: tuple[ProfileRecord, ...]
    rows: tuple[PlanRow, ...]  # priced rows by $/month, then refused rows
    choice: PlanRow | None
    runners_up: tuple[PlanRow, ...]
    missing: tuple[MissingProfile, ...]
    serverless: tuple[ServerlessProjection, ...]
    break_evens: tuple[BreakEven, ...]
    notes: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """One plain sentence: the choice, or why there is none."""
        if self.choice is not None:
            p = self.choice.projection
            assert p is not None
            return (
                f"choice: {self.choice.instance} x {p.replicas} at batch {p.batch_size}: "
                f"${p.usd_per_month:,.2f}/month, ${p.usd_per_1k:.4g} per 1k requests"
            )
        if any(r.status == "over budget" for r in self.rows):
            cheapest = next(r for r in self.rows if r.status == "over budget")
            assert cheapest.projection is not None and self.inputs.budget_usd_month is not None
            return (
                f"nothing fits the budget of ${self.inputs.budget_usd_month:,.2f}/month: the "
                f"cheapest type that meets the SLO, {cheapest.instance}, costs "
                f"${cheapest.projection.usd_per_month:,.2f}/month"
            )
        if self.rows:
            return f"no profiled instance type can meet the {self.inputs.slo_ms:g} ms SLO"
        return "no instance type has a matching profile: take one with the commands below"


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


def apply_override(
    catalog: Mapping[str, InstanceType], instance: InstanceConfig | None
) -> tuple[dict[str, InstanceType], dict[str, int]]:
    """The catalog with frugal.yaml's ``instance:`` applied, and its slot overrides by name.

    A catalog type gets the config's price and slots; a price without a known type is a
    ``custom`` CPU instance (the config cannot say it has GPUs) with ``slots`` (default 1).
    """
    priced = dict(catalog)
    slots: dict[str, int] = {}
    if instance is None:
        return priced, slots
    known = priced.get(instance.type) if instance.type else None
    if known is not None:
        if instance.price_usd_per_hour is not None:
            known = dataclasses.replace(known, price_usd_per_hour=instance.price_usd_per_hour)
        priced[known.name] = dataclasses.replace(known, source="frugal.yaml instance:")
        name = known.name
    else:
        assert instance.price_usd_per_hour is not None  # config validation: type or price
        name = instance.type or "custom"
        priced[name] = InstanceType(
            name=name,
            provider="custom",
            vcpus=instance.slots or 1,
            gpus=0,
            price_usd_per_hour=instance.price_usd_per_hour,
            source="frugal.yaml instance:",
            as_of="",
        )
        slots[name] = instance.slots or 1  # as the server prices it (resolve_pricer)
    if instance.slots is not None:
        slots[name] = instance.slots
    return priced, slots


def _by_class(profiles: Sequence[ProfileRecord]) -> dict[str, ProfileRecord]:
    if not profiles:
        raise InvalidInput("no profile given", hint="pass --profile FILE (from `frugal profile`)")
    first = profiles[0]
    by_class: dict[str, ProfileRecord] = {}
    for p in profiles:
        if p.model_sha256 != first.model_sha256:
            raise InvalidInput(
                f"{p.file} profiles model {p.model_name} (sha256 {p.model_sha256[:12]}...), "
                f"{first.file} profiles {first.model_name} ({first.model_sha256[:12]}...)",
                hint="plan one model at a time: pass profiles of the same model file",
            )
        if p.hardware_class in by_class:
            raise InvalidInput(
                f"two profiles for hardware class {p.hardware_class}: "
                f"{by_class[p.hardware_class].file} and {p.file}",
                hint="pass one profile per hardware class",
            )
        by_class[p.hardware_class] = p
    return by_class


def _slots(instance: InstanceType, profile: ProfileRecord, overrides: Mapping[str, int]) -> int:
    """A GPU type has one slot per GPU; a CPU type one per ``threads`` vCPUs the profile used."""
    if instance.name in overrides:
        return overrides[instance.name]
    if instance.gpus > 0:
        return instance.gpus
    return instance.vcpus // profile.threads


def _price_row(
    instance: InstanceType, profile: ProfileRecord, slots: int, inputs: PlanInputs
) -> PlanRow:
    row = PlanRow(
        instance=instance.name,
        provider=instance.provider,
        hardware_class=profile.hardware_class,
        price_usd_per_hour=instance.price_usd_per_hour,
        profile=profile.file,
        status="ok",
    )
    if slots < 1:
        return dataclasses.replace(
            row,
            status="too small",
            reason=f"{instance.vcpus} vCPU(s) < the profile's {profile.threads} threads",
        )
    point, bound = choose_batch(profile, inputs.slo_ms, inputs.max_wait_ms)
    if point is None:
        b1 = profile.smallest
        why = (
            f"batch-{b1.batch_size} p99 {b1.p99_ms:.3g} ms > SLO {inputs.slo_ms:g} ms"
            if b1.p99_ms > inputs.slo_ms
            else f"batch-{b1.batch_size} bound 2 x {b1.p99_ms:.3g} + {inputs.max_wait_ms:g} ms "
            f"wait = {bound:.3g} ms > SLO {inputs.slo_ms:g} ms"
        )
        return dataclasses.replace(row, status="cannot meet SLO", reason=why)
    projection = project_cost(
        price_usd_per_hour=instance.price_usd_per_hour,
        slots=slots,
        batch_size=point.batch_size,
        items_per_s_per_slot=point.items_per_s,
        qps=inputs.qps,
        headroom=inputs.headroom,
    )
    budget = inputs.budget_usd_month
    over = budget is not None and projection.usd_per_month > budget
    return dataclasses.replace(
        row,
        status="over budget" if over else "ok",
        reason=f"${projection.usd_per_month:,.2f} > ${budget:,.2f}/month" if over else "",
        point=point,
        latency_bound_ms=bound,
        projection=projection,
    )


def make_plan(
    profiles: Sequence[ProfileRecord],
    catalog: Mapping[str, InstanceType],
    inputs: PlanInputs,
    *,
    serverless: Sequence[ServerlessOffer] = (),
    slot_overrides: Mapping[str, int] | None = None,
) -> Plan:
    """Price every instance type of ``catalog`` that a profile covers, and pick the cheapest."""
    by_class = _by_class(profiles)
    overrides = slot_overrides or {}
    rows: list[PlanRow] = []
    missing: dict[str, list[str]] = {}
    for instance in catalog.values():
        if inputs.provider != "all" and instance.provider not in (inputs.provider, "custom"):
            continue
        profile = next((p for p in by_class.values() if p.matches(instance)), None)
        if profile is None:
            missing.setdefault(hardware_class_of(instance), []).append(instance.name)
            continue
        rows.append(_price_row(instance, profile, _slots(instance, profile, overrides), inputs))
    priced = sorted(
        (r for r in rows if r.projection is not None),
        key=lambda r: (r.projection.usd_per_month if r.projection else 0.0, r.instance),
    )
    refused = sorted((r for r in rows if r.projection is None), key=lambda r: r.instance)
    ok = [r for r in priced if r.status == "ok"]
    choice = ok[0] if ok else None
    template = next(iter(by_class.values()))
    gaps = tuple(
        MissingProfile(cls, tuple(sorted(names)), profile_command(template, cls, inputs.slo_ms))
        for cls, names in sorted(missing.items())
    )
    cpu = by_class.get("cpu")
    server: list[ServerlessProjection] = []
    evens: list[BreakEven] = []
    notes = [f"one request = one item; {HEADROOM_NOTE.format(inputs.headroom)}"]
    if choice is not None and catalog[choice.instance].burstable:
        steady = next((r for r in ok if not catalog[r.instance].burstable), None)
        alternative = (
            f"; the cheapest steady type is {steady.instance} at "
            f"${steady.projection.usd_per_month:,.2f}/month"
            if steady is not None and steady.projection is not None
            else ""
        )
        notes.append(
            f"{choice.instance} is burstable: above its baseline CPU share it throttles or bills "
            f"CPU credits, and the profile measured full cores{alternative}"
        )
    if cpu is not None:
        notes.append(
            f"CPU types are priced from {cpu.file} ({cpu.cpu_model or 'unknown CPU'}, "
            f"{cpu.threads} thread(s) per slot): their vCPUs are assumed as fast as that CPU"
        )
    for offer in serverless:
        if inputs.provider not in ("all", offer.provider):
            continue
        if cpu is None or cpu.batch1 is None:
            need = "a cpu profile" if cpu is None else "a cpu profile with batch size 1"
            notes.append(f"{offer.provider}/{offer.name} not priced: it needs {need}")
            continue
        projection = project_serverless(offer, cpu, qps=inputs.qps, slo_ms=inputs.slo_ms)
        server.append(projection)
        if choice is not None and choice.projection is not None and projection.fits:
            evens.append(break_even(projection, choice.instance, choice.projection))
    return Plan(
        inputs=inputs,
        profiles=tuple(profiles),
        rows=(*priced, *refused),
        choice=choice,
        runners_up=tuple(ok[1:4]),
        missing=gaps,
        serverless=tuple(server),
        break_evens=tuple(evens),
        notes=tuple(notes),
    )


HEADROOM_NOTE = "replicas are added so that none is more than {:.0%} busy"


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """Inputs, every row, the choice and the break-even, for ``frugal check`` and for humans."""

    def row(r: PlanRow) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(r).items() if k not in ("point", "projection")}
        out["batch_size"] = r.point.batch_size if r.point else None
        out["p99_ms"] = r.point.p99_ms if r.point else None
        out.update(dataclasses.asdict(r.projection) if r.projection else {})
        return out

    return {
        "format": PLAN_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": dataclasses.asdict(plan.inputs),
        "profiles": [
            {
                "file": p.file,
                "model": p.model_name,
                "sha256": p.model_sha256,
                "hardware_class": p.hardware_class,
                "threads": p.threads,
            }
            for p in plan.profiles
        ],
        "rows": [row(r) for r in plan.rows],
        "choice": row(plan.choice) if plan.choice else None,
        "runners_up": [r.instance for r in plan.runners_up],
        "verdict": plan.verdict,
        "no_profile": [dataclasses.asdict(m) for m in plan.missing],
        "serverless": [dataclasses.asdict(s) for s in plan.serverless],
        "break_even": [dataclasses.asdict(b) for b in plan.break_evens],
        "notes": list(plan.notes),
    }
