"""Where a plan's numbers come from: which figures price each hardware class (end to end, or
the model alone), and which prices, with a warning when they are old.

Each price group (provider, source page, date) is printed with the answer, so a reader sees what
the dollars rest on; a group dated more than ``MAX_AGE_MONTHS`` before today, or not dated at
all, gets a warning (prices change: AWS cut its H100 prices by about 45% in June 2025).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from frugal.accounting.catalog import InstanceType, ServerlessOffer, age_in_months
from frugal.optimize.profiles import ProfileRecord

MAX_AGE_MONTHS = 12
CONFIG_SOURCE = "frugal.yaml instance:"  # a price the user gave: theirs to keep current


def catalog_lines(
    instances: Iterable[InstanceType], offers: Iterable[ServerlessOffer], today: date
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(one line per price group, one warning per group older than MAX_AGE_MONTHS)."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for instance in instances:
        key = (instance.provider, instance.source, instance.as_of)
        groups.setdefault(key, []).append(instance.name)
    for offer in offers:
        groups.setdefault((offer.provider, offer.source, offer.as_of), []).append(offer.name)
    lines: list[str] = []
    warnings: list[str] = []
    for (provider, source, as_of), names in sorted(groups.items()):
        which = names[0] if len(names) == 1 else f"{len(names)} types"
        when = f"as of {as_of}" if as_of else "undated"
        lines.append(f"{provider} {which}: {source or 'no source given'}, {when}")
        if source == CONFIG_SOURCE:
            continue
        months = age_in_months(as_of, today)
        if months is None:
            warnings.append(
                f"{provider} prices of {', '.join(sorted(names))} carry no date (as_of): "
                "they may be stale; check them or pass --catalog with yours"
            )
        elif months > MAX_AGE_MONTHS:
            warnings.append(
                f"{provider} prices of {which} are as of {as_of}, {months} months before today "
                f"({today.isoformat()}): check {source or 'the provider'} or pass --catalog "
                "with current prices"
            )
    return tuple(lines), tuple(warnings)


def figures_line(profile: ProfileRecord, slo_ms: float) -> tuple[str, list[str]]:
    """Which figures price this profile's hardware, in words, and warnings about them."""
    http = profile.http
    if http is None:
        target = profile.model_path or profile.model_name
        return (
            f"{profile.hardware_class}: model-only profile ({profile.file}); the server's own CPU "
            f"is not counted: run `frugal profile {target} --http --out {profile.file}`",
            [],
        )
    warnings = []
    if http.cpu_model and profile.cpu_model and http.cpu_model != profile.cpu_model:
        warnings.append(
            f"{profile.file}: its end-to-end section was measured on {http.cpu_model}, its "
            f"model-only points on {profile.cpu_model}"
        )
    level = http.best_within(slo_ms)
    if level is None:
        return (
            f"{profile.hardware_class}: end-to-end profile ({profile.file}); no level meets the "
            f"SLO",
            warnings,
        )
    return (
        f"{profile.hardware_class}: end-to-end profile ({profile.file}), the server's own CPU is "
        f"counted: at concurrency {level.concurrency} (p99 {level.p99_ms:.3g} ms, the most "
        f"requests/s within the SLO) {1000 * level.server_cpu_s_per_request:.3g} ms of server "
        f"CPU a request. A replica is bounded by vCPUs / that CPU, which assumes it keeps every "
        f"vCPU busy within the SLO (enough `frugal serve --workers`, enough concurrent "
        f"requests); the profiling machine did {level.req_per_s:,.0f} requests/s at that level "
        f"with {level.server_cores_busy:.2f} of its {http.cpu_cores} cores busy "
        f"({http.server_workers} worker(s))",
        warnings,
    )


__all__ = ["CONFIG_SOURCE", "MAX_AGE_MONTHS", "catalog_lines", "figures_line"]
