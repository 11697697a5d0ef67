"""Instance prices shipped as data (``catalog/*.yaml``), each file with its source and date.

``frugal plan --catalog FILE`` reads files of the same shape instead of the shipped ones, so a
team can price its own discounts (and tests can price a hand-made catalog).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ServerlessOffer:
    """A pay-per-request function service (AWS Lambda): GB-seconds plus a fee per request.

    Memory can be set from ``min_memory_mb`` to ``max_memory_mb`` in ``memory_step_mb`` steps,
    duration is billed in ``billing_step_ms`` steps, and ``mb_per_vcpu`` is the memory at which
    the function gets one full vCPU (CPU share is proportional to memory).
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


def load_catalog(paths: Sequence[Path] | None = None) -> dict[str, InstanceType]:
    """Every instance type of every provider file (the shipped ones by default), by name."""
    catalog: dict[str, InstanceType] = {}
    for file, data in _documents(paths):
        for name, spec in (data.get("instances") or {}).items():
            try:
                catalog[name] = InstanceType(
                    name=name,
                    provider=str(data["provider"]),
                    vcpus=int(spec["vcpus"]),
                    gpus=int(spec.get("gpus", 0)),
                    price_usd_per_hour=float(spec["price_usd_per_hour"]),
                    source=str(data.get("source", "")),
                    as_of=str(data.get("as_of", "")),
                    memory_gib=spec.get("memory_gib"),
                    gpu=spec.get("gpu"),
                    burstable=bool(spec.get("burstable", False)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"bad entry ({exc!r}): needs vcpus and price_usd_per_hour",
                    field=f"instances.{name}",
                    file=file,
                ) from None
    return catalog


def load_serverless(paths: Sequence[Path] | None = None) -> list[ServerlessOffer]:
    """The ``serverless:`` entries of every provider file (the shipped ones by default)."""
    offers: list[ServerlessOffer] = []
    for file, data in _documents(paths):
        for name, spec in (data.get("serverless") or {}).items():
            try:
                known = {
                    k: spec[k]
                    for k in ("memory_step_mb", "min_memory_mb", "max_memory_mb",
                              "billing_step_ms", "mb_per_vcpu")
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
                        as_of=str(data.get("as_of", "")),
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
