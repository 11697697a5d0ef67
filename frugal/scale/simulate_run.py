"""``frugal simulate``'s inputs made whole: the trace, the profile, the config's batching,
cache TTLs and autoscaling, the instance's price, and the fleets to compare; then the runs.

Every value has one source, in this order: the flag, else frugal.yaml (``--config``), else the
profile, else a stated default; a missing one that has no sensible default is an error naming
the flag to give.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from frugal.accounting import InstanceType, load_catalog
from frugal.config import FrugalConfig, ModelConfig, PolicyName, load_config
from frugal.errors import InvalidInput
from frugal.optimize.profiles import ProfileRecord, read_profile
from frugal.scale.policies import ScalingPolicy, named_policy, policy_from_config
from frugal.scale.simulate import Fleet, Settings, simulate
from frugal.scale.simulate_calibrate import calibrate
from frugal.scale.simulate_result import SimResult
from frugal.scale.simulate_service import ServiceModel, service_model
from frugal.scale.traces import Trace, read_trace


@dataclass(frozen=True, slots=True)
class Request:
    """The flags of ``frugal simulate`` (None: not given)."""

    trace: Path
    profile: Path
    policies: tuple[str, ...] = ()
    fixed: tuple[int, ...] = ()
    instance: str | None = None
    replica_vcpus: float | None = None
    slo_ms: float = 100.0
    config: Path | None = None
    model: str | None = None
    max_batch_size: int | None = None
    max_queue: int | None = None
    timeout_ms: float | None = None
    cache_ttl_s: float | None = None
    startup_s: float | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    tick_s: float = 1.0
    window_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the runs share, and the fleets to run."""

    trace: Trace
    profile: ProfileRecord
    service: ServiceModel
    settings: Settings
    fleets: tuple[Fleet, ...]
    instance: str
    instance_usd_per_hour: float
    replica_vcpus: float
    instance_vcpus: int


def prepare(request: Request) -> Prepared:
    """Read and check every input; raises InvalidInput naming the flag at the first problem."""
    config = load_config(request.config) if request.config is not None else None
    profile = read_profile(request.profile)
    model = _model(config, profile, request.model) if config is not None else None
    known = [e.name for e in config.endpoints] if config is not None else None
    trace = read_trace(request.trace, known_endpoints=known)
    if not len(trace):
        raise InvalidInput(f"--trace {request.trace}: no arrivals", field="--trace")
    batching = model.batching if model is not None else None
    max_batch = request.max_batch_size or (
        batching.max_batch_size
        if batching is not None
        else profile.http.max_batch_size
        if profile.http is not None
        else profile.points[-1].batch_size
    )
    service = service_model(profile, max_batch_size=max_batch, startup_s=request.startup_s)
    spec = _instance(request.instance, config)
    vcpus = request.replica_vcpus if request.replica_vcpus is not None else 1.0
    if vcpus > spec.vcpus:
        raise InvalidInput(
            f"--replica-vcpus {vcpus:g} is more than {spec.name}'s {spec.vcpus}",
            field="--replica-vcpus",
        )
    ttl_default = request.cache_ttl_s if request.cache_ttl_s is not None else 0.0
    endpoint_ttls: tuple[tuple[str, float], ...] = ()
    if request.cache_ttl_s is None and config is not None:
        endpoint_ttls = tuple(
            (e.name, e.cache.ttl_s)
            for e in config.endpoints
            if e.cache is not None and e.cache.enabled
        )
    settings = Settings(
        slo_ms=request.slo_ms,
        replica_usd_per_hour=spec.price_usd_per_hour * vcpus / spec.vcpus,
        max_queue=request.max_queue or (batching.max_queue if batching is not None else 1024),
        timeout_ms=request.timeout_ms
        or (batching.timeout_ms if batching is not None else 10_000.0),
        cache_ttl_s=ttl_default,
        endpoint_ttl_s=endpoint_ttls,
        tick_s=request.tick_s,
        window_s=request.window_s,
    )
    if profile.http is not None and profile.http.open_levels:
        service = calibrate(service, profile.http, settings)
    fleets = _fleets(request, model)
    return Prepared(
        trace=trace,
        profile=profile,
        service=service,
        settings=settings,
        fleets=fleets,
        instance=spec.name,
        instance_usd_per_hour=spec.price_usd_per_hour,
        replica_vcpus=vcpus,
        instance_vcpus=spec.vcpus,
    )


def run(
    prepared: Prepared,
    on_progress: Callable[[Fleet, int], None] | None = None,
) -> list[SimResult]:
    """Each fleet on the trace, in the order given."""
    results = []
    for fleet in prepared.fleets:
        report = (lambda n, f=fleet: on_progress(f, n)) if on_progress is not None else None
        results.append(
            simulate(prepared.trace, prepared.service, fleet, prepared.settings, on_progress=report)
        )
    return results


def _model(config: FrugalConfig, profile: ProfileRecord, name: str | None) -> ModelConfig:
    """--model, else the model whose sha256 the profile measured, else the only one."""
    if name is not None:
        for m in config.models:
            if m.name == name or f"{m.name}:{m.version}" == name:
                return m
        raise InvalidInput(
            f"--model {name!r} is not in the config",
            field="--model",
            hint="models: " + ", ".join(m.name for m in config.models),
        )
    for m in config.models:
        if m.sha256 and m.sha256.lower() == profile.model_sha256:
            return m
    if len(config.models) == 1:
        return config.models[0]
    raise InvalidInput("no model of the config has the profile's sha256: name it", field="--model")


def _instance(name: str | None, config: FrugalConfig | None) -> InstanceType:
    catalog = load_catalog()
    if name is None and config is not None:
        if config.instance.price_usd_per_hour is not None:
            vcpus = config.instance.vcpus
            if vcpus is None and config.instance.type in catalog:
                vcpus = catalog[config.instance.type].vcpus
            return InstanceType(
                name=config.instance.type or "custom",
                provider="config",
                vcpus=vcpus or 1,
                gpus=0,
                price_usd_per_hour=config.instance.price_usd_per_hour,
                source="frugal.yaml",
                as_of="",
            )
        name = config.instance.type
    if name is None:
        raise InvalidInput(
            "give --instance (a catalog type such as c7i.large) or --config", field="--instance"
        )
    if name not in catalog:
        import difflib

        close = difflib.get_close_matches(name, list(catalog), n=3)
        raise InvalidInput(
            f"--instance {name!r} is not in the price catalog",
            field="--instance",
            hint=f"did you mean {', '.join(close)}?" if close else None,
        )
    return catalog[name]


def _fleets(request: Request, model: ModelConfig | None) -> tuple[Fleet, ...]:
    fleets: list[Fleet] = []
    names = list(request.policies)
    if not names and not request.fixed:
        names = ["config" if model is not None else "balanced"]
    for name in names:
        fleets.append(Fleet(policy=_policy(name, model, request)))
    fleets.extend(Fleet(fixed=n) for n in request.fixed)
    return tuple(fleets)


def _policy(name: str, model: ModelConfig | None, request: Request) -> ScalingPolicy:
    """A named policy; ``config`` (or ``custom``) is the model's `autoscaling:` in frugal.yaml,
    the flags' replica bounds applied on top."""
    if name in ("config", "custom"):
        if model is None:
            raise InvalidInput(
                f"--policy {name} reads models[].autoscaling: give --config", field="--policy"
            )
        if name == "custom" and model.autoscaling.policy != "custom":
            raise InvalidInput(
                f"--policy custom: the model's autoscaling.policy is {model.autoscaling.policy}",
                field="--policy",
            )
        policy = policy_from_config(model.autoscaling)
    else:
        policy = named_policy(_policy_name(name))
    low = request.min_replicas if request.min_replicas is not None else policy.min_replicas
    high = request.max_replicas if request.max_replicas is not None else policy.max_replicas
    if low > high:
        raise InvalidInput(
            f"--min-replicas {low} is above --max-replicas {high}", field="--min-replicas"
        )
    initial = min(max(policy.initial_replicas, low), high)
    return dataclasses.replace(
        policy, min_replicas=low, max_replicas=high, initial_replicas=initial
    )


def _policy_name(name: str) -> PolicyName:
    if name == "conservative":
        return "conservative"
    if name == "aggressive":
        return "aggressive"
    if name == "balanced":
        return "balanced"
    raise InvalidInput(
        f"--policy {name!r}: choose conservative, balanced, aggressive, custom or config",
        field="--policy",
    )


__all__ = ["Prepared", "Request", "prepare", "run"]
