"""``frugal check``: a CI cost gate on the projected $ per 1,000 requests of each endpoint.

Each endpoint's cost is recomputed from three things only (no model is loaded, so the gate needs
neither torch nor onnxruntime): the config (instance price and slots, each model's
``batching.max_batch_size``, which endpoint serves which model), the profiles of those models
(matched by name and sha256), and the plan inputs (``qps``, ``headroom``) stored in the baseline.
The formula is ``frugal.optimize.costing.project_cost``, the same one ``frugal plan`` uses:

    allocated $/1k = 1000 x price_per_second / (slots x items_per_s at max_batch_size)
    billed $/1k    = 1000 x replicas x price_per_second / qps,
                     replicas = ceil(qps / (slots x items_per_s x headroom))

The first is DESIGN.md's per-item cost (what the ledger records for a full batch); the second
adds the idle time of whole replicas at ``qps``. The gate fails when either rises by more than
``--max-increase`` against the baseline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from frugal.accounting.catalog import InstanceType
from frugal.accounting.prices import Pricer, resolve_pricer
from frugal.config import FrugalConfig, ModelConfig
from frugal.errors import ArtifactError, InvalidInput
from frugal.optimize.costing import project_cost
from frugal.optimize.profiles import ProfileRecord, hardware_class_of

BASELINE_FORMAT = "frugal-cost-baseline/1"
Verdict = Literal["ok", "fail", "added", "removed"]


@dataclass(frozen=True, slots=True)
class EndpointCost:
    """The projected cost of one endpoint, and what it was computed from."""

    endpoint: str
    model: str  # name:version
    sha256: str
    profile: str
    hardware_class: str
    max_batch_size: int
    batch_size: int  # the measured batch priced: the largest <= max_batch_size
    items_per_s_per_slot: float
    usd_per_1k: float  # allocated
    billed_usd_per_1k: float
    replicas: int
    utilization: float
    usd_per_month: float


@dataclass(frozen=True, slots=True)
class Baseline:
    qps: float
    headroom: float
    instance: dict[str, Any]
    endpoints: dict[str, EndpointCost]


@dataclass(frozen=True, slots=True)
class Comparison:
    endpoint: str
    before: EndpointCost | None
    now: EndpointCost | None
    change: float | None  # allocated $/1k, now / before - 1
    billed_change: float | None
    verdict: Verdict
    failed: bool = False  # "fail", and "removed" unless removals are allowed


def parse_increase(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1. A bare number >= 1 is refused: 10 could mean 10% or 1000%."""
    value = text.strip()
    try:
        number = float(value.removesuffix("%"))
    except ValueError:
        raise InvalidInput(
            f"--max-increase {text!r} is not a number", hint="write 10% or 0.1"
        ) from None
    if value.endswith("%"):
        number /= 100
    elif number >= 1:
        raise InvalidInput(f"--max-increase {text!r} is ambiguous", hint="write 10% or 0.1")
    if number < 0:
        raise InvalidInput(f"--max-increase {text!r} is negative", hint="write 10% or 0.1")
    return number


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


def price_config(
    config: FrugalConfig,
    profiles: Sequence[ProfileRecord],
    *,
    qps: float,
    headroom: float,
    catalog: Mapping[str, InstanceType],
    config_file: str = "",
) -> tuple[Pricer, dict[str, EndpointCost]]:
    """Each endpoint's projected cost (``v2:<model>:<version>`` per model if none declared)."""
    pricer = resolve_pricer(config.instance, dict(catalog), file=config_file)
    instance = catalog.get(config.instance.type) if config.instance.type else None
    cascades = [e.name for e in config.endpoints if e.route is not None]
    if cascades:  # its cost depends on how many items escalate: a calibration result
        raise InvalidInput(
            f"endpoint {cascades[0]} is a cascade, which frugal check cannot price yet",
            field="endpoints",
            hint="check a config whose endpoints name one model each",
        )
    routes = [(e.name, e.models[0]) for e in config.endpoints] or [
        (f"v2:{m.name}:{m.version}", m.key) for m in config.models
    ]
    costs: dict[str, EndpointCost] = {}
    for endpoint, ref in routes:
        model = config.find_model(ref)
        assert model is not None  # config validation checked every reference
        profile = _profile_for(model, profiles, instance, config_file)
        point = profile.point_at_most(model.batching.max_batch_size)
        if point is None:
            raise InvalidInput(
                f"{profile.file} measured no batch size <= {model.name}'s max_batch_size "
                f"{model.batching.max_batch_size} (smallest: {profile.smallest.batch_size})",
                hint=f"re-profile with --batch-sizes 1,...,{model.batching.max_batch_size}",
            )
        p = project_cost(
            price_usd_per_hour=pricer.price_usd_per_hour,
            slots=pricer.slots,
            batch_size=point.batch_size,
            items_per_s_per_slot=point.items_per_s,
            qps=qps,
            headroom=headroom,
        )
        costs[endpoint] = EndpointCost(
            endpoint=endpoint,
            model=model.key,
            sha256=profile.model_sha256,
            profile=profile.file,
            hardware_class=profile.hardware_class,
            max_batch_size=model.batching.max_batch_size,
            batch_size=point.batch_size,
            items_per_s_per_slot=point.items_per_s,
            usd_per_1k=p.allocated_usd_per_1k,
            billed_usd_per_1k=p.usd_per_1k,
            replicas=p.replicas,
            utilization=p.utilization,
            usd_per_month=p.usd_per_month,
        )
    return pricer, costs


def compare(
    before: Mapping[str, EndpointCost],
    now: Mapping[str, EndpointCost],
    max_increase: float,
    *,
    allow_removed: bool = False,
) -> list[Comparison]:
    """One row per endpoint in either; ``fail`` when allocated or billed $/1k rose too much.

    An endpoint in the baseline but not in the config fails unless ``allow_removed``: renaming
    an endpoint would otherwise hide any rise (the new name has no baseline to compare with).
    An added endpoint passes: it has no baseline yet.
    """
    rows = []
    for name in sorted(set(before) | set(now)):
        b, n = before.get(name), now.get(name)
        if n is None:
            rows.append(Comparison(name, b, n, None, None, "removed", failed=not allow_removed))
            continue
        if b is None:
            rows.append(Comparison(name, b, n, None, None, "added"))
            continue
        change = n.usd_per_1k / b.usd_per_1k - 1
        billed = n.billed_usd_per_1k / b.billed_usd_per_1k - 1
        # The tolerance keeps a 10% rise against a 10% threshold from failing by rounding.
        fail = max(change, billed) > max_increase + 1e-9
        rows.append(Comparison(name, b, n, change, billed, "fail" if fail else "ok", fail))
    return rows


def baseline_to_json(pricer: Pricer, costs: Mapping[str, EndpointCost], *, qps: float,
                     headroom: float) -> dict[str, Any]:  # fmt: skip
    return {
        "format": BASELINE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {"qps": qps, "headroom": headroom},
        "instance": {
            "name": pricer.instance,
            "price_usd_per_hour": pricer.price_usd_per_hour,
            "slots": pricer.slots,
        },
        "endpoints": {name: asdict(c) for name, c in costs.items()},
    }


def read_baseline(path: Path) -> Baseline:
    """Read a baseline written by ``frugal check --update``; problems exit 2 naming the file."""
    if not path.exists():
        raise InvalidInput(
            f"{path}: no cost baseline",
            hint=f"run the same command with `--qps N --update` to write it, then commit {path}",
        )
    hint = "run the same command with `--qps N --update` to write it anew"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the cost baseline: {exc}", hint=hint) from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidInput(
            f"{path}: not a cost baseline (format is {found!r}, expected {BASELINE_FORMAT!r})",
            hint=hint,
        )
    try:
        inputs = data["inputs"]
        endpoints = {
            name: EndpointCost(**{**raw, "endpoint": name})
            for name, raw in data["endpoints"].items()
        }
        if any(c.usd_per_1k <= 0 or c.billed_usd_per_1k <= 0 for c in endpoints.values()):
            raise ValueError("every endpoint's usd_per_1k and billed_usd_per_1k must be > 0")
        return Baseline(
            qps=float(inputs["qps"]),
            headroom=float(inputs["headroom"]),
            instance=dict(data.get("instance") or {}),
            endpoints=endpoints,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{path}: malformed cost baseline ({exc!r})", hint=hint) from None
