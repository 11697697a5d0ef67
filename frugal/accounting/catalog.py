"""Instance prices shipped as data (``catalog/*.yaml``), each file with its source and date."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml


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


def load_catalog() -> dict[str, InstanceType]:
    """Every instance type of every shipped provider file, by name."""
    catalog: dict[str, InstanceType] = {}
    folder = resources.files("frugal.accounting") / "catalog"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        for name, spec in (data.get("instances") or {}).items():
            catalog[name] = InstanceType(
                name=name,
                provider=data["provider"],
                vcpus=int(spec["vcpus"]),
                gpus=int(spec.get("gpus", 0)),
                price_usd_per_hour=float(spec["price_usd_per_hour"]),
                source=data["source"],
                as_of=str(data["as_of"]),
                memory_gib=spec.get("memory_gib"),
                gpu=spec.get("gpu"),
            )
    return catalog
