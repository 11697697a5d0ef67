"""Instance prices shipped as data (``catalog/*.yaml``), each file with its source and date.

``frugal plan --catalog FILE`` reads files of the same shape instead of the shipped ones, so a
team can price its own discounts (and tests can price a hand-made catalog). A row may carry its
own ``source`` and ``as_of``, which override the file's for that row (a type added later, from
another page). Prices age: ``age_in_months`` lets a caller warn when a date is old.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from frugal.errors import ConfigError


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    provider: str
    vcpus: int
    gpus: int
    price_usd_per_hour: float
    source: str
    as_of: str
    memory_gib: float | None = None
    gpu: str | None = None
    burstable: bool = False  # a CPU credit type (t3, B-series): full speed only in bursts
    # Of a burstable type: the share of each vCPU it may use on average (0.2 = 20%), and the
    # price of CPU above it in $ per vCPU-hour (T3 Unlimited); None: it throttles instead.
    baseline_cpu_share: float | None = None
    surplus_usd_per_vcpu_hour: float | None = None
    arch: str = "x86_64"  # arm64 (Graviton) is its own hardware class
    accelerator: str | None = None  # a non-GPU accelerator (inferentia2): its own class


@dataclass(frozen=True, slots=True)
class ServerlessOffer:
    """A pay-per-request function service (AWS Lambda): GB-seconds plus a fee per request.

    Memory can be set from ``min_memory_mb`` to ``max_memory_mb`` in ``memory_step_mb`` steps,
    duration is billed in ``billing_step_ms`` steps, and ``mb_per_vcpu`` is the memory at which
    the function gets one full vCPU (CPU share is proportional to memory). ``init_billed``: a
    cold start's initialization is billed as duration (Lambda: since 2025-08-01).
    """

    name: str
    provider: str
    price_usd_per_gb_second: float
    price_usd_per_million_requests: float
    source: str
    as_of: str
    memory_step_mb: int = 1
    min_memory_mb: int = 128
    max_memory_mb: int = 10_240
    billing_step_ms: float = 1.0
    mb_per_vcpu: float | None = None
    init_billed: bool = True


def _catalog_files(paths: Sequence[Path] | None) -> list[tuple[str, str]]:
    """(name, text) of each catalog file: the given ones, or the shipped ones when None."""
    if paths is not None:
        files = []
        for path in paths:
            try:
                files.append((str(path), Path(path).read_text(encoding="utf-8")))
            except OSError as exc:
                raise ConfigError(
                    f"cannot read price catalog: {exc.strerror}", file=str(path)
                ) from None
        return files
    folder = resources.files("frugal.accounting") / "catalog"
    return [
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    ]


def _documents(paths: Sequence[Path] | None) -> Iterable[tuple[str, dict[str, Any]]]:
    for name, text in _catalog_files(paths):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError("not valid YAML", file=name) from None
        if not isinstance(data, dict) or "provider" not in data:
            raise ConfigError(
                "not a price catalog: expected a mapping with `provider`, `instances`",
                file=name,
                hint="see frugal/accounting/catalog/aws.yaml for the shape",
            )
        yield name, data


def _optional_float(spec: dict[str, Any], key: str) -> float | None:
    value = spec.get(key)
    return None if value is None else float(value)


def _instance(name: str, spec: dict[str, Any], data: dict[str, Any]) -> InstanceType:
    instance = InstanceType(
        name=name,
        provider=str(data["provider"]),
        vcpus=int(spec["vcpus"]),
        gpus=int(spec.get("gpus", 0)),
        price_usd_per_hour=float(spec["price_usd_per_hour"]),
        source=str(spec.get("source", data.get("source", ""))),
        as_of=str(spec.get("as_of", data.get("as_of", ""))),
        memory_gib=spec.get("memory_gib"),
        gpu=spec.get("gpu"),
        burstable=bool(spec.get("burstable", False)),
        baseline_cpu_share=_optional_float(spec, "baseline_cpu_share"),
        surplus_usd_per_vcpu_hour=_optional_float(spec, "surplus_usd_per_vcpu_hour"),
        arch=str(spec.get("arch", "x86_64")),
        accelerator=spec.get("accelerator"),
    )
    if instance.vcpus < 1 or instance.price_usd_per_hour <= 0:
        raise ValueError("vcpus must be >= 1 and price_usd_per_hour > 0")
    share = instance.baseline_cpu_share
    if share is not None and not 0 < share <= 1:
        raise ValueError(f"baseline_cpu_share must be in (0, 1], got {share}")
    return instance


def load_catalog(paths: Sequence[Path] | None = None) -> dict[str, InstanceType]:
    """Every instance type of every provider file (the shipped ones by default), by name."""
    catalog: dict[str, InstanceType] = {}
    for file, data in _documents(paths):
        for name, spec in (data.get("instances") or {}).items():
            try:
                catalog[name] = _instance(name, spec, data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ConfigError(
                    f"bad entry ({exc}): needs vcpus and price_usd_per_hour",
                    field=f"instances.{name}",
                    file=file,
                ) from None
    return catalog


_AS_OF = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


def age_in_months(as_of: str, today: date) -> int | None:
    """Whole months from ``as_of`` ("2025-06" or "2025-06-30") to ``today``; None if undated."""
    match = _AS_OF.match(as_of.strip())
    if match is None:
        return None
    year, month = int(match[1]), int(match[2])
    months = (today.year - year) * 12 + today.month - month
    if match[3] is not None and today.day < int(match[3]):
        months -= 1
    return months


def load_serverless(paths: Sequence[Path] | None = None) -> list[ServerlessOffer]:
    """The ``serverless:`` entries of every provider file (the shipped ones by default)."""
    offers: list[ServerlessOffer] = []
    for file, data in _documents(paths):
        for name, spec in (data.get("serverless") or {}).items():
            try:
                known = {
                    k: spec[k]
                    for k in ("memory_step_mb", "min_memory_mb", "max_memory_mb",
                              "billing_step_ms", "mb_per_vcpu", "init_billed")
                    if k in spec
                }  # fmt: skip
                offers.append(
                    ServerlessOffer(
                        name=name,
                        provider=str(data["provider"]),
                        price_usd_per_gb_second=float(spec["price_usd_per_gb_second"]),
                        price_usd_per_million_requests=float(
                            spec["price_usd_per_million_requests"]
                        ),
                        source=str(spec.get("source", data.get("source", ""))),
                        as_of=str(spec.get("as_of", data.get("as_of", ""))),
                        **known,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"bad entry ({exc!r}): needs price_usd_per_gb_second and "
                    "price_usd_per_million_requests",
                    field=f"serverless.{name}",
                    file=file,
                ) from None
    return offers
