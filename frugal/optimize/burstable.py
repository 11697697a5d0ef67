"""Burstable types (t3, Azure B-series) priced with their CPU credits, not as full cores.

A burstable type earns credits for a baseline share of each vCPU (t3.medium: 20%) and can run
above it only on credits. Over a day the average has to fit the baseline, or:

- T3 Unlimited (AWS's default for t3) bills the surplus at ``surplus_usd_per_vcpu_hour``;
- B-series (no surplus price in the catalog) is throttled to the baseline.

The CPU a load needs is ``qps x cpu_s_per_request`` vCPUs on average (end-to-end profile: the
server's CPU per request; model-only: ``threads / items_per_s``, the model's alone). With ``n``
replicas of ``v`` vCPUs at baseline ``b`` and surplus price ``p``, a month costs

    n x price x 730  +  max(0, need - n x v x b) x p x 730

which is linear in ``n`` between the replicas the headroom asks for (``n_min``) and the replicas
that keep every one within its baseline (``n_base``), so the cheaper of those two is the
cheapest of all. Without a surplus price only ``n_base`` is safe. A type without a baseline in
the catalog is excluded: its sustained speed is unknown.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from frugal.accounting.catalog import InstanceType
from frugal.optimize.costing import HOURS_PER_MONTH, SECONDS_PER_MONTH, Projection


@dataclass(frozen=True, slots=True)
class CreditPricing:
    """The projection with credits counted (None: the type is excluded), and why."""

    projection: Projection | None
    note: str


def _month(instance: InstanceType, replicas: int, need_vcpus: float) -> tuple[float, float]:
    """($/month in all, of which CPU credits) for ``replicas`` carrying ``need_vcpus``."""
    assert instance.baseline_cpu_share is not None
    surplus = max(0.0, need_vcpus - replicas * instance.vcpus * instance.baseline_cpu_share)
    credits = surplus * (instance.surplus_usd_per_vcpu_hour or 0.0) * HOURS_PER_MONTH
    return replicas * instance.price_usd_per_hour * HOURS_PER_MONTH + credits, credits


def price_burstable(
    instance: InstanceType, projection: Projection, cpu_s_per_request: float
) -> CreditPricing:
    """Re-price ``projection`` on a burstable ``instance`` (rule in the module docstring)."""
    if not instance.burstable:
        return CreditPricing(projection, "")
    baseline = instance.baseline_cpu_share
    if baseline is None:
        return CreditPricing(
            None, f"{instance.name} is burstable and the catalog gives no baseline_cpu_share"
        )
    need = projection.qps * cpu_s_per_request  # vCPUs busy on average
    n_min = projection.replicas
    share = need / (n_min * instance.vcpus)
    n_base = max(n_min, math.ceil(need / (instance.vcpus * baseline) - 1e-9))
    if n_base == n_min:
        note = f"{instance.name}: {share:.1%} of each vCPU is within its {baseline:.0%} baseline"
        return CreditPricing(projection, note)
    options = [n_base] if instance.surplus_usd_per_vcpu_hour is None else [n_min, n_base]
    replicas = min(options, key=lambda n: (_month(instance, n, need)[0], -n))
    usd_per_month, credits = _month(instance, replicas, need)
    capacity = projection.capacity_items_per_s
    priced = dataclasses.replace(
        projection,
        replicas=replicas,
        utilization=projection.qps / (replicas * capacity),
        usd_per_month=usd_per_month,
        usd_per_1k=1000.0 * usd_per_month / (projection.qps * SECONDS_PER_MONTH),
        cpu_credit_usd_per_month=credits,
    )
    if replicas == n_min:
        note = (
            f"{instance.name}: needs {share:.1%} of each vCPU, over its {baseline:.0%} "
            f"baseline: surplus CPU at ${instance.surplus_usd_per_vcpu_hour:g}/vCPU-hour adds "
            f"${credits:,.2f}/month (cheaper than {n_base} replicas within the baseline)"
        )
    else:
        why = (
            "it has no paid surplus and would be throttled"
            if instance.surplus_usd_per_vcpu_hour is None
            else "cheaper than paying for surplus CPU"
        )
        note = (
            f"{instance.name}: {n_min} replica(s) would need {share:.1%} of each vCPU, over its "
            f"{baseline:.0%} baseline; {replicas} replicas keep each within it ({why})"
        )
    return CreditPricing(priced, note)


__all__ = ["CreditPricing", "price_burstable"]
