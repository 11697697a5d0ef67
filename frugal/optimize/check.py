"""``frugal check``: a CI cost gate on the projected $ per 1,000 requests of each endpoint.

Each endpoint's cost is recomputed from data only (no model is loaded, so the gate needs
neither torch nor onnxruntime): the config (instance price and slots, each model's
``batching.max_batch_size``, which endpoint serves which models), the profiles of those models
(matched by name and sha256), the plan inputs (``qps``, ``headroom``) stored in the baseline,
and, for a cascade, the share of items reaching each tier (route_shares.py). Pricing is
check_pricing.py; the formula is ``frugal.optimize.costing.project_cost``, the one ``frugal
plan`` uses:

    allocated $/1k = 1000 x price_per_second / (slots x items_per_s at max_batch_size)
    billed $/1k    = 1000 x replicas x price_per_second / qps,
                     replicas = ceil(qps / (slots x items_per_s x headroom))

The first is DESIGN.md's per-item cost (what the ledger records for a full batch); the second
adds the idle time of whole replicas at ``qps``. An endpoint of several models is priced at
its effective items/s, 1 / sum(share / items_per_s) over its models, so allocated $/1k is the
share-weighted sum of theirs. The gate fails when either rises by more than ``--max-increase``
against the baseline, or when an endpoint of the baseline is gone.

This module holds the records, the comparison and the baseline file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from frugal.accounting.prices import Pricer
from frugal.errors import InvalidInput

BASELINE_FORMAT = "frugal-cost-baseline/1"
Verdict = Literal["ok", "fail", "added", "removed"]


Route = Literal["model", "cascade", "split", "fallback"]
Role = Literal["model", "tier", "version", "shadow"]


@dataclass(frozen=True, slots=True)
class PartCost:
    """One model of an endpoint's route, priced from its profile, and the share of the
    endpoint's items it runs on: a tier's reach, a version's weight, a shadow's sample rate."""

    role: Role
    model: str  # name:version
    share: float
    sha256: str
    profile: str
    hardware_class: str
    max_batch_size: int
    batch_size: int
    items_per_s_per_slot: float
    usd_per_1k: float  # allocated $ per 1k items this model runs
    # The whole server's CPU per request from the profile's end-to-end (``--http``) section;
    # None for a model-only profile.
    server_cpu_s_per_request: float | None = None


@dataclass(frozen=True, slots=True)
class EndpointCost:
    """The projected cost of one endpoint, and what it was computed from.

    One model without a shadow fills the flat fields alone (``parts`` empty), as baselines
    written before routes were priced do. A route (or a shadow) lists its models in ``parts``;
    the flat fields then describe the whole: ``model`` joins the models, ``sha256`` and
    ``profile`` are empty, ``batch_size`` is the first model's and ``items_per_s_per_slot`` the
    endpoint's effective rate.
    """

    endpoint: str
    model: str  # name:version; a route: "small:1 > large:1" (cascade), "a:1 | b:1" (split)
    sha256: str
    profile: str
    hardware_class: str
    max_batch_size: int
    batch_size: int  # the measured batch priced: the largest <= max_batch_size
    items_per_s_per_slot: float
    usd_per_1k: float  # allocated, a shadow's included
    billed_usd_per_1k: float
    replicas: int
    utilization: float
    usd_per_month: float
    route: Route = "model"
    parts: tuple[PartCost, ...] = ()
    shares_source: str = ""  # "calibration", "ledger" (a cascade's); "weights" (a split's)
    shares_detail: str = ""  # the file, thresholds or window the shares were read from
    shadow_usd_per_1k: float = 0.0  # the shadow copy's part of usd_per_1k, shown apart
    not_priced: str = ""  # what the projection leaves out: route.rules
    thresholds: tuple[float, ...] = ()  # a cascade's gate thresholds, as priced
    # "end-to-end profile": capped by the server's measured CPU per request (every served
    # model's profile has an ``http`` section); "model-only profile": the model's busy time only.
    figures: str = "model-only profile"
    server_cpu_s_per_request: float | None = None  # the endpoint's, end-to-end figures only

    def tier_reach(self) -> tuple[float, ...]:
        """A cascade's share of items reaching each tier, as priced."""
        return tuple(p.share for p in self.parts if p.role == "tier")

    def tiers(self) -> tuple[str, ...]:
        return tuple(p.model for p in self.parts if p.role == "tier")


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
        endpoints = {name: _endpoint_cost(name, raw) for name, raw in data["endpoints"].items()}
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


def _endpoint_cost(name: str, raw: dict[str, Any]) -> EndpointCost:
    """One endpoint of a baseline; one written before routes were priced has no ``parts``."""
    parts = tuple(PartCost(**part) for part in raw.get("parts", ()))
    thresholds = tuple(float(t) for t in raw.get("thresholds", ()))
    return EndpointCost(**{**raw, "endpoint": name, "parts": parts, "thresholds": thresholds})
