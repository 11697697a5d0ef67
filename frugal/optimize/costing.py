"""Dollars per 1,000 requests at one batch size on one instance: the one formula that both
``frugal plan`` and ``frugal check`` use.

It is DESIGN.md's cost model applied to a profile instead of a ledger. A profile measures one
slot: at batch size ``b`` a batch keeps the slot busy ``b / items_per_s`` seconds, so

    allocated cost of an item = price_per_second x busy_s / slots / b
                              = price_per_second / (slots x items_per_s)

(``Pricer.item_cost_usd``, the same code that prices live requests). That is what the ledger
would record for each request if every batch were full. At a request rate ``qps`` the machines
are also paid while idle, which the replica view adds:

    capacity per replica  = slots x items_per_s, or less when the server's own CPU bounds it
                            (max_requests_per_s, from an end-to-end profile: throughput.py)
    replicas              = ceil(qps / (capacity x headroom))
    utilization           = qps / (replicas x capacity)
    $/month               = replicas x price_usd_per_hour x 730
    billed $ per 1k       = 1000 x replicas x price_per_second / qps = allocated / utilization

One request is taken to be one item. When the server's CPU is the bound, the allocated cost of a
request is the replica's price per second over that capacity (``limited_by: server CPU``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from frugal.accounting.prices import Pricer
from frugal.errors import InvalidInput

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


@dataclass(frozen=True, slots=True)
class Projection:
    """What serving ``qps`` costs on one instance type at one batch size."""

    price_usd_per_hour: float
    slots: float
    batch_size: int
    items_per_s_per_slot: float
    capacity_items_per_s: float  # one replica, all slots busy
    qps: float
    headroom: float
    replicas: int
    utilization: float
    usd_per_month: float
    usd_per_1k: float  # billed: idle replicas included
    allocated_usd_per_1k: float  # busy slot time only, what the ledger records per request
    limited_by: str = "model"  # or "server CPU": which bound set capacity_items_per_s
    cpu_credit_usd_per_month: float = 0.0  # a burstable type's surplus CPU (in usd_per_month)


def project_cost(
    *,
    price_usd_per_hour: float,
    slots: float,
    batch_size: int,
    items_per_s_per_slot: float,
    qps: float,
    headroom: float,
    max_requests_per_s: float | None = None,
) -> Projection:
    """Price ``qps`` requests/s on replicas of an instance kept at most ``headroom`` busy;
    ``max_requests_per_s`` caps a replica below ``slots x items/s`` (the server's CPU)."""
    if qps <= 0 or not math.isfinite(qps):
        raise InvalidInput(f"qps must be > 0, got {qps}", field="qps")
    if not 0 < headroom <= 1:
        raise InvalidInput(f"headroom must be in (0, 1], got {headroom}", field="headroom")
    if slots < 1 or items_per_s_per_slot <= 0 or batch_size < 1:
        raise InvalidInput("slots, batch size and items/s must be positive", field="slots")
    if max_requests_per_s is not None and not max_requests_per_s > 0:
        raise InvalidInput("max_requests_per_s must be > 0", field="max_requests_per_s")
    pricer = Pricer(price_usd_per_hour=price_usd_per_hour, slots=slots)
    busy_s = batch_size / items_per_s_per_slot
    allocated_usd_per_1k = 1000.0 * pricer.item_cost_usd(busy_s, batch_size)
    capacity = slots * items_per_s_per_slot
    limited_by = "model"
    if max_requests_per_s is not None and max_requests_per_s < capacity:
        capacity, limited_by = max_requests_per_s, "server CPU"
        allocated_usd_per_1k = 1000.0 * price_usd_per_hour / 3600.0 / capacity
    # The small tolerance keeps 200 / (400 x 0.5) from becoming 2 replicas by rounding error.
    replicas = max(1, math.ceil(qps / (capacity * headroom) - 1e-9))
    usd_per_month = replicas * price_usd_per_hour * HOURS_PER_MONTH
    return Projection(
        price_usd_per_hour=price_usd_per_hour,
        slots=slots,
        batch_size=batch_size,
        items_per_s_per_slot=items_per_s_per_slot,
        capacity_items_per_s=capacity,
        qps=qps,
        headroom=headroom,
        replicas=replicas,
        utilization=qps / (replicas * capacity),
        usd_per_month=usd_per_month,
        usd_per_1k=1000.0 * usd_per_month / (qps * SECONDS_PER_MONTH),
        allocated_usd_per_1k=allocated_usd_per_1k,
        limited_by=limited_by,
    )
