"""Price each endpoint of a config for ``frugal check``: its models from their profiles, weighted
by the share of the endpoint's items each runs on.

- one model: its profile at its ``max_batch_size`` (share 1);
- a cascade: each tier weighted by the share of items reaching it, read from a calibration, the
  ledger or the baseline (route_shares.py has the order), else an error naming what to give;
- a split: each version weighted by its configured weight (the config under review is what the
  gate prices; weights changed at run time with ``frugal route`` are not the config's);
- a fallback list: its first model (the others answer only that model's errors);
- a shadow: its model's cost times ``sample``, added to the endpoint's and shown apart;
- ``route.rules``: not priced; the route is priced as if no rule matched (a rule's share of the
  traffic depends on callers, deadlines and load, none of which the config says), and the
  endpoint's ``not_priced`` says so.

When every model the endpoint runs has an end-to-end profile (``frugal profile --http``), a
replica is also capped by the server's own CPU, as ``frugal plan`` caps it
(throughput.py): ``vcpus / cpu_s_per_request``, the endpoint's CPU per request being its models'
(at their busiest measured level) weighted by their shares. That counts the server's HTTP work
again for each escalated item, so for a cascade it is an upper bound. ``vcpus`` is
``instance.vcpus``, else the catalog's, else the slots: never this machine's, so a gate gives the
same answer in CI as on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from frugal.accounting.catalog import InstanceType
from frugal.accounting.prices import Pricer, resolve_pricer
from frugal.config import EndpointConfig, FrugalConfig, ModelConfig
from frugal.errors import ArtifactError, InvalidInput
from frugal.optimize.check import EndpointCost, PartCost, Role, Route
from frugal.optimize.costing import project_cost
from frugal.optimize.profiles import ProfileRecord, hardware_class_of
from frugal.optimize.route_shares import (
    CalibrationFile,
    TierShares,
    shares_from_calibration,
    shares_from_ledger,
)
from frugal.optimize.throughput import END_TO_END, MODEL_ONLY, replica_throughput


@dataclass(frozen=True, slots=True)
class ShareSources:
    """Where a cascade's tier shares may come from, tried in this order (route_shares.py)."""

    calibrations: Sequence[CalibrationFile] = ()
    ledger: Path | None = None  # None: no ledger is read
    since_ts: float = 0.0  # the ledger's window starts here
    since: str = "7d"  # the window as the user wrote it, for the output
    baseline: Mapping[str, EndpointCost] = field(default_factory=dict)


def default_profile_paths(config_path: Path) -> list[Path]:
    """``profiles/*.json`` next to the config, the documented default location."""
    folder = config_path.parent / "profiles"
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise InvalidInput(
            f"no profiles: {folder}/*.json matches nothing",
            hint=f"take one per model: frugal profile {config_path} --model NAME "
            f"--out {folder}/NAME.json (or pass --profile FILE)",
        )
    return paths


def price_config(
    config: FrugalConfig,
    profiles: Sequence[ProfileRecord],
    *,
    qps: float,
    headroom: float,
    catalog: Mapping[str, InstanceType],
    config_file: str = "",
    shares: ShareSources | None = None,
) -> tuple[Pricer, dict[str, EndpointCost]]:
    """Each endpoint's projected cost (``v2:<model>:<version>`` per model if none declared)."""
    pricer = resolve_pricer(config.instance, dict(catalog), file=config_file)
    instance = catalog.get(config.instance.type) if config.instance.type else None
    sources = shares or ShareSources()
    _check_calibrations(config, sources.calibrations)

    vcpus = config.instance.vcpus or (instance.vcpus if instance is not None else None)
    pricer = replace(pricer, cpus=float(vcpus or pricer.slots))

    def part(role: Role, ref: str, share: float) -> PartCost:
        model = config.find_model(ref)
        assert model is not None  # config validation checked every reference
        return _price_model(model, role, share, pricer, profiles, instance, config_file)

    costs: dict[str, EndpointCost] = {}
    if not config.endpoints:
        for m in config.models:
            name = f"v2:{m.name}:{m.version}"
            costs[name] = _endpoint(name, "model", [part("model", m.key, 1.0)], pricer, qps,
                                    headroom)  # fmt: skip
        return pricer, costs
    for endpoint in config.endpoints:
        route = endpoint.route
        kind: Route = "model"
        how: tuple[str, str] = ("", "")
        thresholds: tuple[float, ...] = ()
        if route is None or route.model is not None:
            parts = [part("model", endpoint.models[0], 1.0)]
        elif route.cascade is not None:
            kind = "cascade"
            keys = [_key(config, t.model) for t in route.cascade]
            thresholds = tuple(t.accept.comparison[1] for t in route.cascade if t.accept)
            tiers = _tier_shares(endpoint, keys, thresholds, sources)
            how = (tiers.source, tiers.detail)
            reach = zip(route.cascade, tiers.reach, strict=True)
            parts = [part("tier", tier.model, share) for tier, share in reach]
        elif route.split is not None:
            kind, how = "split", ("weights", "the configured weights")
            total = sum(w.weight for w in route.split)
            parts = [part("version", w.model, w.weight / total) for w in route.split]
        else:
            assert route.fallback is not None
            kind = "fallback"
            parts = [part("model", route.fallback[0], 1.0)]
        if route is not None and route.shadow is not None:
            parts.append(part("shadow", route.shadow.model, route.shadow.sample))
        rules = len(route.rules) if route is not None else 0
        cost = _endpoint(endpoint.name, kind, parts, pricer, qps, headroom, how=how,
                         not_priced=f"{rules} rule(s)" if rules else "")  # fmt: skip
        costs[endpoint.name] = replace(cost, thresholds=thresholds)
    return pricer, costs


def _endpoint(
    name: str,
    kind: Route,
    parts: list[PartCost],
    pricer: Pricer,
    qps: float,
    headroom: float,
    *,
    how: tuple[str, str] = ("", ""),
    not_priced: str = "",
) -> EndpointCost:
    """The endpoint at its effective items/s: one item keeps a slot busy sum(share / items/s);
    with end-to-end figures for every part, a replica is also capped by the server's CPU."""
    first = parts[0]
    if len(parts) == 1 and first.share == 1.0:
        items_per_s = first.items_per_s_per_slot  # one model: its rate exactly, as before routes
    else:
        items_per_s = 1.0 / sum(q.share / q.items_per_s_per_slot for q in parts)
    cpu_s = None
    if all(q.server_cpu_s_per_request is not None for q in parts):
        cpu_s = sum(q.share * (q.server_cpu_s_per_request or 0.0) for q in parts)
    p = project_cost(
        price_usd_per_hour=pricer.price_usd_per_hour,
        slots=pricer.slots,
        batch_size=first.batch_size,
        items_per_s_per_slot=items_per_s,
        qps=qps,
        headroom=headroom,
        max_requests_per_s=pricer.cpus / cpu_s if cpu_s else None,
    )
    served = [q for q in parts if q.role != "shadow"]
    one = served[0] if len(served) == 1 else None
    joiner = " > " if kind == "cascade" else " | "
    return EndpointCost(
        endpoint=name,
        model=one.model if one else joiner.join(q.model for q in served),
        sha256=one.sha256 if one else "",
        profile=one.profile if one else "",
        hardware_class=first.hardware_class,
        max_batch_size=first.max_batch_size,
        batch_size=first.batch_size,
        items_per_s_per_slot=p.items_per_s_per_slot,
        usd_per_1k=p.allocated_usd_per_1k,
        billed_usd_per_1k=p.usd_per_1k,
        replicas=p.replicas,
        utilization=p.utilization,
        usd_per_month=p.usd_per_month,
        route=kind,
        parts=() if kind == "model" and len(parts) == 1 else tuple(parts),
        shares_source=how[0],
        shares_detail=how[1],
        shadow_usd_per_1k=sum((q.share * q.usd_per_1k for q in parts if q.role == "shadow"), 0.0),
        not_priced=not_priced,
        figures=END_TO_END if cpu_s is not None else MODEL_ONLY,
        server_cpu_s_per_request=cpu_s,
    )


def _price_model(
    model: ModelConfig,
    role: Role,
    share: float,
    pricer: Pricer,
    profiles: Sequence[ProfileRecord],
    instance: InstanceType | None,
    config_file: str,
) -> PartCost:
    profile = _profile_for(model, profiles, instance, config_file)
    point = profile.point_at_most(model.batching.max_batch_size)
    if point is None:
        raise InvalidInput(
            f"{profile.file} measured no batch size <= {model.name}'s max_batch_size "
            f"{model.batching.max_batch_size} (smallest: {profile.smallest.batch_size})",
            hint=f"re-profile with --batch-sizes 1,...,{model.batching.max_batch_size}",
        )
    usd = 1000.0 * pricer.item_cost_usd(point.batch_size / point.items_per_s, point.batch_size)
    replica = replica_throughput(profile, point, vcpus=pricer.cpus, slots=pricer.slots)
    return PartCost(role=role, model=model.key, share=share, sha256=profile.model_sha256,
                    profile=profile.file, hardware_class=profile.hardware_class,
                    max_batch_size=model.batching.max_batch_size,
                    batch_size=point.batch_size, items_per_s_per_slot=point.items_per_s,
                    usd_per_1k=usd,
                    server_cpu_s_per_request=replica.cpu_s_per_request)  # fmt: skip


def _key(config: FrugalConfig, ref: str) -> str:
    model = config.find_model(ref)
    assert model is not None  # config validation checked every reference
    return model.key


def _check_calibrations(config: FrugalConfig, calibrations: Sequence[CalibrationFile]) -> None:
    """Each --calibration file names a cascade endpoint of this config, one file per endpoint."""
    cascades = [e.name for e in config.endpoints if e.route is not None and e.route.cascade]
    seen: dict[str, Path] = {}
    for c in calibrations:
        if c.endpoint not in cascades:
            raise InvalidInput(
                f"{c.path} calibrated endpoint {c.endpoint!r}, not a cascade of the config",
                field="--calibration",
                hint=f"cascade endpoints: {', '.join(cascades) or 'none'}",
            )
        if c.endpoint in seen:
            raise InvalidInput(
                f"{seen[c.endpoint]} and {c.path} both calibrated endpoint {c.endpoint!r}",
                field="--calibration",
                hint="give one --calibration file per cascade endpoint",
            )
        seen[c.endpoint] = c.path


def _tier_shares(
    endpoint: EndpointConfig,
    keys: list[str],
    thresholds: tuple[float, ...],
    sources: ShareSources,
) -> TierShares:
    """The cascade's tier shares from the first source that has them (route_shares.py).

    The baseline's shares stand only for the tiers and thresholds they were priced at: a
    cascade whose tiers or thresholds changed needs a calibration of the new ones (or live
    traffic in the ledger)."""
    for c in sources.calibrations:
        if c.endpoint == endpoint.name:
            return shares_from_calibration(c, keys, thresholds)
    before = sources.baseline.get(endpoint.name)
    kept = None
    if before is not None and before.tiers() == tuple(keys) and before.thresholds == thresholds:
        kept = TierShares(before.tier_reach(), before.shares_source, before.shares_detail)
    if kept is not None and kept.source == "calibration":
        return kept  # like with like: the ledger does not replace a calibration unasked
    if sources.ledger is not None:
        found = shares_from_ledger(sources.ledger, endpoint.name, keys,
                                   since_ts=sources.since_ts, since=sources.since)  # fmt: skip
        if found is not None:
            return found
    if kept is not None:
        return kept
    ledger = (
        f"{sources.ledger} has no request through {' > '.join(keys)} in the last {sources.since}"
        if sources.ledger is not None
        else "no ledger was read"
    )
    baseline = "the baseline has no shares for it"
    if before is not None and before.route == "cascade":
        baseline = (
            f"the baseline's shares are for {' > '.join(before.tiers())} at thresholds "
            f"{_numbers(before.thresholds)}, the config has {' > '.join(keys)} at "
            f"{_numbers(thresholds)}"
        )
    raise InvalidInput(
        f"endpoint {endpoint.name} is a cascade: its cost depends on the share of items each "
        f"tier sees, and nothing here says it ({ledger}; {baseline})",
        field="--calibration",
        hint=f"give `--calibration FILE` from `frugal calibrate CONFIG --endpoint "
        f"{endpoint.name} --data LABELED --out FILE`, or a ledger that served it "
        "(--ledger PATH, --since 30d)",
    )


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _profile_for(
    model: ModelConfig,
    profiles: Sequence[ProfileRecord],
    instance: InstanceType | None,
    config_file: str,
) -> ProfileRecord:
    """The profile of this model file on the instance's hardware; stale profiles are errors."""
    config_file = config_file or "frugal.yaml"
    folder = Path(config_file).parent / "profiles"
    named = [p for p in profiles if p.model_name == model.name]
    out = named[0].file if named else str(folder / f"{model.name}.json")
    fix = f"run `frugal profile {config_file} --model {model.name} --out {out}`"
    if not named:
        raise InvalidInput(
            f"no profile of model {model.name} among {', '.join(p.file for p in profiles)}",
            hint=fix,
        )
    if model.sha256 is not None:
        fresh = [p for p in named if p.model_sha256 == model.sha256.lower()]
        if not fresh:
            stale = named[0]
            raise ArtifactError(
                f"stale profile {stale.file}: it measured {model.name} with sha256 "
                f"{stale.model_sha256[:12]}..., the config's model has {model.sha256[:12]}...",
                hint=fix,
            )
        named = fresh
    if instance is None:  # a custom price: the config does not say which hardware it is
        if len(named) == 1:
            return named[0]
        classes = ", ".join(p.hardware_class for p in named)
        raise InvalidInput(
            f"model {model.name} has profiles for {classes} and the instance has no catalog "
            "type to choose between them",
            hint="set instance.type, or pass only the profile for your hardware with --profile",
        )
    match = [p for p in named if p.matches(instance)]
    if not match:
        cls = hardware_class_of(instance)
        device = "cpu" if cls == "cpu" else "cuda"
        raise InvalidInput(
            f"no profile of model {model.name} on {cls} hardware (instance {instance.name}); "
            f"found {', '.join(p.hardware_class for p in named)}",
            hint=f"on such a machine: frugal profile {config_file} --model {model.name} "
            f"--device {device} --out {folder}/{model.name}-{cls.replace(':', '-')}.json",
        )
    return match[0]


__all__ = ["ShareSources", "default_profile_paths", "price_config"]
