"""Serverless (pay per request) against a dedicated instance, and the QPS where they cross.

A function is priced per request from the profile's batch-1 numbers (a function answers one
request per invocation):

    memory_mb       = max(peak RSS, min memory, threads x mb_per_vcpu), rounded up to the step
    billed_s        = mean batch-1 latency rounded up to the billing step
    usd_per_request = price_per_gb_s x memory_mb / 1024 x billed_s + price_per_request

``threads x mb_per_vcpu`` buys the function as many vCPUs as the profiled worker used threads
(Lambda's CPU share grows with memory: 1,769 MB is one vCPU), so the profiled latency can hold;
that also assumes the function's vCPU is as fast as the profiled CPU. Cold starts, the invocation
overhead and free tiers are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from frugal.accounting.catalog import ServerlessOffer
from frugal.errors import InvalidInput
from frugal.optimize.costing import SECONDS_PER_MONTH, Projection
from frugal.optimize.profiles import ProfileRecord


@dataclass(frozen=True, slots=True)
class ServerlessProjection:
    offer: str  # provider/name, e.g. aws/lambda
    memory_mb: int
    billed_ms: float
    p99_ms: float
    meets_slo: bool
    usd_per_request: float
    usd_per_month: float
    usd_per_1k: float
    assumptions: tuple[str, ...]
    fits: bool = True  # False when the model needs more memory than the offer allows


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Where a dedicated choice becomes cheaper than a serverless offer.

    ``qps`` is None when the dedicated instance costs more per request even when fully used,
    so serverless is cheaper at every rate.
    """

    offer: str
    instance: str
    qps: float | None
    note: str


def _round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def project_serverless(
    offer: ServerlessOffer, profile: ProfileRecord, *, qps: float, slo_ms: float
) -> ServerlessProjection:
    """Cost of ``qps`` requests/s as one function invocation each, from a CPU profile."""
    batch1 = profile.batch1
    if batch1 is None:
        raise InvalidInput(
            f"{profile.file}: serverless is priced from batch size 1, which was not measured",
            hint="profile with --batch-sizes starting at 1",
        )
    assumptions = [
        f"the function's vCPU is as fast as the profiled CPU ({profile.cpu_model or 'unknown'})",
        "one invocation per request; cold starts, invocation overhead and free tier ignored",
    ]
    need_mb = float(offer.min_memory_mb)
    rss_mb: float | None = batch1.peak_rss_mb  # the format allows null
    if rss_mb is not None:
        need_mb = max(need_mb, rss_mb)
        assumptions.append(f"memory covers the profile's peak RSS ({rss_mb:.0f} MB)")
    else:
        assumptions.append("the profile has no peak RSS: memory is the offer's minimum")
    if offer.mb_per_vcpu is not None:
        cpu_mb = profile.threads * offer.mb_per_vcpu
        if cpu_mb > need_mb:
            need_mb = cpu_mb
            assumptions.append(
                f"memory buys {profile.threads} vCPU(s) ({offer.mb_per_vcpu:g} MB each), "
                "as many as the profiled worker's threads"
            )
    memory_mb = int(_round_up(need_mb, offer.memory_step_mb))
    billed_ms = _round_up(batch1.mean_ms, offer.billing_step_ms)
    usd_per_request = (
        offer.price_usd_per_gb_second * memory_mb / 1024.0 * billed_ms / 1000.0
        + offer.price_usd_per_million_requests / 1e6
    )
    return ServerlessProjection(
        offer=f"{offer.provider}/{offer.name}",
        memory_mb=memory_mb,
        billed_ms=billed_ms,
        p99_ms=batch1.p99_ms,
        meets_slo=batch1.p99_ms <= slo_ms,
        usd_per_request=usd_per_request,
        usd_per_month=usd_per_request * qps * SECONDS_PER_MONTH,
        usd_per_1k=1000.0 * usd_per_request,
        assumptions=tuple(assumptions),
        fits=memory_mb <= offer.max_memory_mb,
    )


def break_even(serverless: ServerlessProjection, instance: str, dedicated: Projection) -> BreakEven:
    """Solve serverless(q) = dedicated(q) for the request rate q.

    Serverless costs ``q x r`` per second (r = $ per request); ``n`` dedicated replicas cost
    ``n x p`` per second (p = price per second) and carry up to ``n x c`` requests/s (c =
    capacity x headroom), so n = ceil(q / c). For any n, dedicated is cheaper once
    ``n x p <= q x r``, i.e. q >= n x p / r, which is reachable inside that replica count only if
    p / r <= c: the same condition for every n. So either dedicated never wins, or it first wins
    at ``q* = p / r`` (on one replica). Past each replica step (q just above n x c) serverless
    is briefly cheaper again, until q = (n + 1) x p / r.
    """
    price_per_s = dedicated.price_usd_per_hour / 3600.0
    carried = dedicated.capacity_items_per_s * dedicated.headroom
    q_star = price_per_s / serverless.usd_per_request
    if q_star > carried:
        return BreakEven(
            offer=serverless.offer,
            instance=instance,
            qps=None,
            note=(
                f"{serverless.offer} is cheaper at every rate: a fully used {instance} "
                f"(${1000 * price_per_s / carried:.4g}/1k at {dedicated.headroom:.0%} busy) "
                f"costs more than ${serverless.usd_per_1k:.4g}/1k"
            ),
        )
    return BreakEven(
        offer=serverless.offer,
        instance=instance,
        qps=q_star,
        note=(
            f"{instance} is cheaper than {serverless.offer} from {q_star:.4g} requests/s "
            f"(one replica: ${dedicated.price_usd_per_hour:g}/h / 3600 s = {q_star:.4g}/s x "
            f"${serverless.usd_per_request:.4g} per request)"
        ),
    )
