"""Serverless (pay per request) against a dedicated instance, and the QPS where they cross.

A function is priced per request from the profile's batch-1 numbers (a function answers one
request per invocation), cold starts included:

    memory_mb       = max(peak RSS, min memory, threads x mb_per_vcpu), rounded up to the step
    billed_s        = mean batch-1 latency rounded up to the billing step
    cold share      = exp(-qps x keep_warm_s)
    usd_per_request = price_per_gb_s x memory_mb / 1024 x (billed_s + cold share x init_s)
                      + price_per_request

``threads x mb_per_vcpu`` buys the function as many vCPUs as the profiled worker used threads
(Lambda's CPU share grows with memory: 1,769 MB is one vCPU), so the profiled latency can hold;
that also assumes the function's vCPU is as fast as the profiled CPU.

A cold start happens when a request finds no warm environment: with Poisson arrivals at ``qps``,
the chance that none came in the last ``keep_warm_s`` (how long the platform keeps an idle
environment; Lambda's is not documented, 5 to 15 minutes is what users observe) is
``exp(-qps x keep_warm_s)``. Its init time is the model's measured load time (``model_load_s``
of the profile; the runtime's own start is not in it), billed when the offer bills init (Lambda
since 2025-08-01). Latency follows plan's one rule (plan.py): the function's bound is its batch-1
p99, plus the init time when cold starts reach 1% of requests (then they are in the p99).
Scale-out cold starts, platform recycling, invocation overhead (API gateway) and free tiers are
not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from frugal.accounting.catalog import ServerlessOffer
from frugal.errors import InvalidInput
from frugal.optimize.costing import SECONDS_PER_MONTH, Projection
from frugal.optimize.profiles import ProfileRecord

DEFAULT_KEEP_WARM_S = 600.0
P99_SHARE = 0.01  # cold starts on at least this share of requests are in the p99


@dataclass(frozen=True, slots=True)
class ServerlessProjection:
    offer: str  # provider/name, e.g. aws/lambda
    memory_mb: int
    billed_ms: float
    p99_ms: float  # batch-1 p99 of a warm invocation
    meets_slo: bool  # latency_bound_ms <= the SLO
    usd_per_request: float
    usd_per_month: float
    usd_per_1k: float
    assumptions: tuple[str, ...]
    fits: bool = True  # False when the model needs more memory than the offer allows
    latency_bound_ms: float = 0.0  # p99, plus the init time when cold starts are in the p99
    cold_start_share: float = 0.0  # of requests
    init_s: float | None = None  # a cold start's init time (None: the profile has none)
    source: str = ""
    as_of: str = ""

    @property
    def kind(self) -> str:
        return "serverless"


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


def cold_start_share(qps: float, keep_warm_s: float) -> float:
    """Share of requests that find no warm environment: no arrival in the last keep-warm."""
    return math.exp(-qps * keep_warm_s)


def project_serverless(
    offer: ServerlessOffer,
    profile: ProfileRecord,
    *,
    qps: float,
    slo_ms: float,
    keep_warm_s: float = DEFAULT_KEEP_WARM_S,
) -> ServerlessProjection:
    """Cost and latency bound of ``qps`` requests/s as one invocation each, from a CPU profile."""
    batch1 = profile.batch1
    if batch1 is None:
        raise InvalidInput(
            f"{profile.file}: serverless is priced from batch size 1, which was not measured",
            hint="profile with --batch-sizes starting at 1",
        )
    assumptions = [
        f"the function's vCPU is as fast as the profiled CPU ({profile.cpu_model or 'unknown'})",
        "one invocation per request; invocation overhead and free tier ignored",
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
    gb_s_price = offer.price_usd_per_gb_second * memory_mb / 1024.0
    usd_per_request = gb_s_price * billed_ms / 1000.0 + offer.price_usd_per_million_requests / 1e6
    share = cold_start_share(qps, keep_warm_s)
    init_s = profile.model_load_s
    bound = batch1.p99_ms
    if init_s is None:
        assumptions.append(
            "the profile has no model load time: cold starts are neither timed nor priced "
            "(re-run frugal profile to record it)"
        )
    else:
        init_ms = _round_up(init_s * 1000.0, offer.billing_step_ms)
        if offer.init_billed:
            usd_per_request += share * gb_s_price * init_ms / 1000.0
        if share >= P99_SHARE:
            bound += init_s * 1000.0
        assumptions.append(
            f"a cold start ({init_s * 1000:.0f} ms: the model's measured load time"
            f"{', billed' if offer.init_billed else ''}) on {share:.2%} of requests (those with "
            f"none in the {keep_warm_s:g} s before, at {qps:g}/s); scale-out cold starts not "
            "counted"
        )
    return ServerlessProjection(
        offer=f"{offer.provider}/{offer.name}",
        memory_mb=memory_mb,
        billed_ms=billed_ms,
        p99_ms=batch1.p99_ms,
        meets_slo=bound <= slo_ms,
        usd_per_request=usd_per_request,
        usd_per_month=usd_per_request * qps * SECONDS_PER_MONTH,
        usd_per_1k=1000.0 * usd_per_request,
        assumptions=tuple(assumptions),
        fits=memory_mb <= offer.max_memory_mb,
        latency_bound_ms=bound,
        cold_start_share=share,
        init_s=init_s,
        source=offer.source,
        as_of=offer.as_of,
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
