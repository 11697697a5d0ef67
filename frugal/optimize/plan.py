"""``frugal plan``: the cheapest way to serve a QPS within a p99 SLO, an instance type or a
serverless function, from measured profiles only.

An instance type is priced from a profile taken on its class of hardware (``cpu`` profiles for
x86-64 CPU types, ``cpu:arm64`` for Graviton, ``gpu:T4`` for T4 types, ...); a type with no such
profile is listed with the command that would measure it, never given a guessed latency.

One latency rule holds every option, instance or serverless, to the same test:

    bound = service p99 + batch fill wait + queue wait + start-up wait  <=  slo_ms

with each term what that option measured or must allow for:

    option                        service p99       fill wait     queue wait     start-up
    instance, model-only profile  p99 of batch b    max_wait_ms   one more p99   0 (always on)
    instance, end-to-end profile  the HTTP p99 measured at the chosen concurrency (it contains
                                  the other three, and the server's own work)     0
    serverless function           batch-1 p99       0 (batch 1)   0 (own env.)   init time when
                                                                                 cold starts hit
                                                                                 >= 1% of requests

A model-only instance runs the measured batch with the most items/s whose bound fits; an
end-to-end one the clean concurrency level with the most requests/s whose p99 fits. A replica's
capacity is ``throughput.replica_throughput`` (the server's CPU bounds it when the profile is
end to end), burstable types pay for CPU above their baseline (``burstable.py``), serverless
pays for its cold starts (``serverless.py``), and the choice is the cheapest option of either
kind that meets the rule and the budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from frugal.accounting.catalog import InstanceType, ServerlessOffer
from frugal.config import InstanceConfig
from frugal.errors import InvalidInput
from frugal.optimize.plan_rows import (
    PROVIDERS,
    PlanInputs,
    PlanRow,
    Status,
    choose_batch,
    price_row,
    slots_for,
)
from frugal.optimize.plan_sources import CONFIG_SOURCE, catalog_lines, figures_line
from frugal.optimize.profiles import ProfileRecord, hardware_class_of, profile_command
from frugal.optimize.serverless import (
    BreakEven,
    ServerlessProjection,
    break_even,
    project_serverless,
)


@dataclass(frozen=True, slots=True)
class MissingProfile:
    """Instance types of one hardware class that no profile covers."""

    hardware_class: str
    instances: tuple[str, ...]
    command: str


Option = PlanRow | ServerlessProjection


@dataclass(frozen=True, slots=True)
class Plan:
    inputs: PlanInputs
    profiles: tuple[ProfileRecord, ...]
    rows: tuple[PlanRow, ...]  # priced rows by $/month, then refused rows
    choice: Option | None  # the cheapest option of either kind that meets SLO and budget
    runners_up: tuple[Option, ...]
    missing: tuple[MissingProfile, ...]
    serverless: tuple[ServerlessProjection, ...]
    break_evens: tuple[BreakEven, ...]
    notes: tuple[str, ...]
    figures: tuple[str, ...] = ()  # per profile: end-to-end or model-only, and what that means
    catalog: tuple[str, ...] = ()  # where the prices come from
    warnings: tuple[str, ...] = ()  # stale prices, mismatched machines

    @property
    def best_instance(self) -> PlanRow | None:
        return next((r for r in self.rows if r.status == "ok"), None)

    @property
    def verdict(self) -> str:
        """One plain sentence: the choice, or why there is none."""
        if isinstance(self.choice, PlanRow):
            p, level = self.choice.projection, self.choice.level
            assert p is not None
            at = (
                f"end to end at concurrency {level.concurrency}"
                if level is not None
                else f"at batch {p.batch_size}"
            )
            return (
                f"choice: {self.choice.instance} x {p.replicas} {at}: "
                f"${p.usd_per_month:,.2f}/month, ${p.usd_per_1k:.4g} per 1k requests"
            )
        if isinstance(self.choice, ServerlessProjection):
            s = self.choice
            return (
                f"choice: serverless {s.offer} at {s.memory_mb} MB: ${s.usd_per_month:,.2f}/month"
                f", ${s.usd_per_1k:.4g} per 1k requests"
            )
        budget = self.inputs.budget_usd_month
        over = [(r.usd_per_month, r.instance) for r in self.rows if r.status == "over budget"]
        over += [(s.usd_per_month, s.offer) for s in self.serverless if _meets(s)]
        if budget is not None and over:
            cost, name = min(over)
            return (
                f"nothing fits the budget of ${budget:,.2f}/month: the cheapest option that "
                f"meets the SLO, {name}, costs ${cost:,.2f}/month"
            )
        if self.rows or self.serverless:
            return f"no profiled option can meet the {self.inputs.slo_ms:g} ms SLO"
        return "no instance type has a matching profile: take one with the commands below"


def _meets(s: ServerlessProjection) -> bool:
    return s.meets_slo and s.fits


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
        if instance.price_usd_per_hour is not None:  # the user's price: no catalog date applies
            known = dataclasses.replace(known, price_usd_per_hour=instance.price_usd_per_hour,
                                        source=CONFIG_SOURCE, as_of="")  # fmt: skip
        priced[known.name] = known
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
            source=CONFIG_SOURCE,
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


def _serverless(
    offers: Sequence[ServerlessOffer], cpu: ProfileRecord | None, inputs: PlanInputs
) -> tuple[list[ServerlessProjection], list[str]]:
    projections: list[ServerlessProjection] = []
    notes: list[str] = []
    for offer in offers:
        if inputs.provider not in ("all", offer.provider):
            continue
        if cpu is None or cpu.batch1 is None:
            need = "a cpu profile" if cpu is None else "a cpu profile with batch size 1"
            notes.append(f"{offer.provider}/{offer.name} not priced: it needs {need}")
            continue
        projection = project_serverless(
            offer, cpu, qps=inputs.qps, slo_ms=inputs.slo_ms, keep_warm_s=inputs.keep_warm_s
        )
        projections.append(projection)
    return projections, notes


def make_plan(
    profiles: Sequence[ProfileRecord],
    catalog: Mapping[str, InstanceType],
    inputs: PlanInputs,
    *,
    serverless: Sequence[ServerlessOffer] = (),
    slot_overrides: Mapping[str, int] | None = None,
    today: date | None = None,
) -> Plan:
    """Price every option a profile covers, and pick the cheapest that meets the rule."""
    by_class = _by_class(profiles)
    overrides = slot_overrides or {}
    rows: list[PlanRow] = []
    missing: dict[str, list[str]] = {}
    considered: list[InstanceType] = []
    for instance in catalog.values():
        if inputs.provider != "all" and instance.provider not in (inputs.provider, "custom"):
            continue
        considered.append(instance)
        profile = next((p for p in by_class.values() if p.matches(instance)), None)
        if profile is None:
            missing.setdefault(hardware_class_of(instance), []).append(instance.name)
            continue
        rows.append(price_row(instance, profile, slots_for(instance, profile, overrides), inputs))
    priced = sorted((r for r in rows if r.projection is not None),
                    key=lambda r: (r.usd_per_month, r.instance))  # fmt: skip
    refused = sorted((r for r in rows if r.projection is None), key=lambda r: r.instance)
    template = next(iter(by_class.values()))
    gaps = tuple(
        MissingProfile(cls, tuple(sorted(names)), profile_command(template, cls, inputs.slo_ms))
        for cls, names in sorted(missing.items())
    )
    cpu = by_class.get("cpu")
    server, notes = _serverless(serverless, cpu, inputs)
    budget = inputs.budget_usd_month
    options: list[Option] = [r for r in priced if r.status == "ok"]
    options += [s for s in server if _meets(s) and (budget is None or s.usd_per_month <= budget)]
    options.sort(key=lambda o: (o.usd_per_month, isinstance(o, ServerlessProjection)))
    best = next((r for r in priced if r.status == "ok"), None)
    evens = [
        break_even(s, best.instance, best.projection)
        for s in server
        if s.fits and best is not None and best.projection is not None
    ]
    notes.insert(0, f"one request = one item; {HEADROOM_NOTE.format(inputs.headroom)}")
    notes += [r.credit_note for r in priced if r.credit_note]
    figures: list[str] = []
    warnings: list[str] = []
    for p in by_class.values():
        line, warned = figures_line(p, inputs.slo_ms)
        figures.append(line)
        warnings += warned
    if cpu is not None:
        notes.append(
            f"CPU types are priced from {cpu.file} ({cpu.cpu_model or 'unknown CPU'}, "
            f"{cpu.threads} thread(s) per slot): their vCPUs are assumed as fast as that CPU"
        )
    offers = [o for o in serverless if inputs.provider in ("all", o.provider)]
    sources, stale = catalog_lines(considered, offers, today or datetime.now(UTC).date())
    return Plan(
        inputs=inputs,
        profiles=tuple(profiles),
        rows=(*priced, *refused),
        choice=options[0] if options else None,
        runners_up=tuple(options[1:4]),
        missing=gaps,
        serverless=tuple(server),
        break_evens=tuple(evens),
        notes=tuple(notes),
        figures=tuple(figures),
        catalog=sources,
        warnings=(*warnings, *stale),
    )


HEADROOM_NOTE = "replicas are added so that none is more than {:.0%} busy"

__all__ = [
    "PROVIDERS",
    "MissingProfile",
    "Option",
    "Plan",
    "PlanInputs",
    "PlanRow",
    "Status",
    "apply_override",
    "choose_batch",
    "make_plan",
]
