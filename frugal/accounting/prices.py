"""What a second of the instance costs, and how a batch's busy time is shared by its items."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass

from frugal.accounting.catalog import InstanceType, load_catalog
from frugal.config import InstanceConfig
from frugal.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Pricer:
    """The cost model of DESIGN.md: a batch holds one of ``slots`` while it runs.

    cost_of_item = price_per_second x busy_seconds_of_its_batch / slots / items_in_batch

    The server's own work is priced per CPU-second, the machine's price over its ``cpus``
    (accounting/overhead.py).
    """

    price_usd_per_hour: float
    slots: float  # a share of the machine's slots when several processes divide it
    instance: str = "custom"
    cpus: float = 1.0  # the machine's vCPUs (this process's share of them)

    @property
    def workers(self) -> int:
        """Model threads to run: the whole slots this share holds (at least one)."""
        return max(1, math.floor(self.slots + 1e-9))

    def shared_by(self, processes: int) -> Pricer:
        """One of ``processes`` server processes on the machine: a share of its price and slots.

        The slots stay fractional so a slot-second is priced the same in every process
        (price / slots): ``--workers 3`` on 4 slots prices no item 33% dear. A process runs
        ``workers`` threads, so 3 processes on 4 slots leave one slot unused, never oversubscribe
        (unless there are more processes than slots).
        """
        if processes <= 1:
            return self
        return Pricer(self.price_usd_per_hour / processes, self.slots / processes, self.instance,
                      self.cpus / processes)  # fmt: skip

    @property
    def price_usd_per_second(self) -> float:
        return self.price_usd_per_hour / 3600.0

    def batch_cost_usd(self, busy_s: float) -> float:
        return self.price_usd_per_second * busy_s / self.slots

    def item_cost_usd(self, busy_s: float, items: int) -> float:
        return self.batch_cost_usd(busy_s) / max(1, items)

    def cpu_usd(self, cpu_s: float) -> float:
        """What ``cpu_s`` CPU-seconds of the machine cost: its price per second over its vCPUs."""
        return self.price_usd_per_second * cpu_s / self.cpus

    def billed_usd(self, wall_s: float) -> float:
        """What the instance costs for a stretch of wall time, busy or idle."""
        return self.price_usd_per_second * wall_s


def resolve_pricer(
    instance: InstanceConfig, catalog: dict[str, InstanceType] | None = None, *, file: str = ""
) -> Pricer:
    """The price and slots of the configured instance; an explicit price overrides the catalog."""
    spec: InstanceType | None = None
    if instance.type is not None:
        catalog = load_catalog() if catalog is None else catalog
        spec = catalog.get(instance.type)
        if spec is None and instance.price_usd_per_hour is None:
            close = difflib.get_close_matches(instance.type, list(catalog), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ConfigError(
                f"unknown instance type {instance.type!r}",
                field="instance.type",
                file=file,
                hint=f"{hint}or give `price_usd_per_hour` (see docs/cost-model.md)",
            )
    price = instance.price_usd_per_hour
    if price is None:
        assert spec is not None
        price = spec.price_usd_per_hour
    slots = instance.slots
    if slots is None:
        slots = (spec.gpus or spec.vcpus) if spec is not None else 1
    cpus = instance.vcpus
    if cpus is None:  # the catalog's, else this machine's: the server runs where it is priced
        cpus = spec.vcpus if spec is not None else (os.cpu_count() or 1)
    return Pricer(price_usd_per_hour=price, slots=slots, instance=instance.type or "custom",
                  cpus=cpus)  # fmt: skip
