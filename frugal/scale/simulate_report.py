"""``frugal simulate``'s output: a table per trace (one row per fleet), the JSON, the plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from frugal.errors import InvalidInput
from frugal.scale.simulate_result import SimResult
from frugal.scale.simulate_run import Prepared


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _usd(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 10:
        return f"${value:,.2f}"
    # Four significant digits however small: a thousand requests of a small model cost
    # millionths of a dollar.
    decimals = 4 if value <= 0 else max(4, 3 - math.floor(math.log10(value)))
    return f"${value:,.{decimals}f}"


def results_table(prepared: Prepared, results: Sequence[SimResult]) -> Table:
    """One row per fleet, the cheapest marked; cold starts are their own column of dollars."""
    table = Table(
        title=f"{len(prepared.trace):,} requests over "
        f"{prepared.trace.duration_s:,.0f} s, SLO p99 "
        f"{prepared.settings.slo_ms:g} ms"
    )
    for name in (
        "fleet",
        "$ total",
        "$ / 1k",
        "cold-start $",
        "replica-h",
        "util.",
        "p50 ms",
        "p99 ms",
        "% over SLO",
        "dropped",
        "scale events",
        "cold starts",
        "max replicas",
    ):
        table.add_column(name, justify="left" if name == "fleet" else "right")
    meets = [r for r in results if r.p99_ms <= r.slo_ms and r.dropped == 0]
    cheapest = min(meets, key=lambda r: r.cost_usd) if meets else None
    for r in results:
        table.add_row(
            r.label + (" *" if r is cheapest else ""),
            _usd(r.cost_usd),
            _usd(r.usd_per_1k),
            _usd(r.cold_start_usd),
            f"{r.replica_hours:,.3f}",
            f"{r.utilization:.0%}",
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            f"{r.over_slo_pct:.2f}",
            f"{r.dropped:,}",
            str(r.scale_events),
            str(r.cold_starts),
            str(r.max_replicas),
            style="red" if r.p99_ms > r.slo_ms or r.dropped else None,
        )
    return table


def print_results(prepared: Prepared, results: Sequence[SimResult], console: Console) -> None:
    p = prepared
    console.print(results_table(p, results))
    console.print(
        f"replica = {p.replica_vcpus:g} of {p.instance}'s {p.instance_vcpus} vCPUs: "
        f"${p.settings.replica_usd_per_hour:.4f}/h (instance ${p.instance_usd_per_hour:.4f}/h); "
        f"one replica serves at most {p.service.capacity_per_s():,.0f} req/s "
        f"(batch {p.service.max_batch_size}), starts in {p.service.startup_s:g} s"
    )
    hits = results[0].hit_ratio if results else 0.0
    console.print(
        f"cache hit ratio {hits:.1%}; * = cheapest fleet within the SLO with no drops;"
        " red: p99 over the SLO or requests dropped"
    )
    if p.service.load is not None:
        console.print(
            f"server time outside the batch and CPU per request follow the load: fitted to "
            f"{p.service.load.source} of the profile (docs/autoscaling.md#validation)"
        )
        past = past_curve_note(p.service.top_rate_per_s, results)
        if past:
            console.print(f"[yellow]note: {past}[/yellow]")
    elif p.service.end_to_end:
        console.print(
            "[yellow]note: the profile has no open-loop levels: the server's time outside the "
            "batch is read from its closed loop, which under-counts what Poisson arrivals cost "
            "(take them with `frugal profile --http --rates ...`)[/yellow]"
        )
    if not p.service.end_to_end:
        console.print(
            "[yellow]note: a model-only profile: the server's own time per request is not "
            "counted, so replicas look idler than they are (take it with `frugal profile "
            "--http`)[/yellow]"
        )


# Arrivals read past the load curve's top level, as a share of a fleet's requests, above which
# the report says so: a few in a burst's first second move nothing.
PAST_CURVE_NOTE_SHARE = 0.01


def past_curve_note(top_rate_per_s: float, results: Sequence[SimResult]) -> str:
    """What the report says when a fleet's replicas saw more than the profile measured
    (their latency then is a guess: the top level's, never extrapolated); "" otherwise."""
    worst = max(results, key=lambda r: r.past_curve / max(r.requests, 1), default=None)
    if worst is None or worst.past_curve <= PAST_CURVE_NOTE_SHARE * worst.requests:
        return ""
    peak = max(r.peak_rate_per_s for r in results)
    return (
        f"{worst.past_curve / worst.requests:.0%} of {worst.label}'s arrivals came while a "
        f"replica saw more than the profile's highest open-loop level ({top_rate_per_s:,.0f} "
        f"req/s, up to {peak:,.0f}): their latency is read at that level; profile with --rates "
        f"up to about {peak:,.0f} to measure it"
    )


def to_json(prepared: Prepared, results: Sequence[SimResult]) -> dict[str, Any]:
    p = prepared
    return {
        "format": "frugal-simulate/1",
        "trace": {
            "requests": len(p.trace),
            "duration_s": p.trace.duration_s,
            "endpoints": list(p.trace.endpoints),
        },
        "profile": p.profile.file,
        "end_to_end": p.service.end_to_end,
        "load_curve": p.service.load.source if p.service.load is not None else None,
        "instance": p.instance,
        "instance_usd_per_hour": p.instance_usd_per_hour,
        "replica_vcpus": p.replica_vcpus,
        "replica_usd_per_hour": p.settings.replica_usd_per_hour,
        "startup_s": p.service.startup_s,
        "max_batch_size": p.service.max_batch_size,
        "slo_ms": p.settings.slo_ms,
        "fleets": [r.to_dict() for r in results],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"--json {path}: cannot write it: {exc.strerror or exc}", field="--json"
        ) from None


def plot(path: Path, results: Sequence[SimResult]) -> None:
    """Per fleet, a column: offered load, replicas (billed and up), p99 latency vs the SLO."""
    from frugal.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(
        3, len(results), figsize=(4.2 * len(results), 7.5), sharex=True, squeeze=False
    )
    for col, r in enumerate(results):
        s = r.series
        load, replicas, latency = axes[0][col], axes[1][col], axes[2][col]
        load.plot(s.t_s, s.arrivals_per_s, color="tab:blue")
        load.set_title(f"{r.label}: ${r.cost_usd:,.4f}")
        replicas.step(s.t_s, s.replicas, where="pre", color="tab:orange", label="billed")
        replicas.step(s.t_s, s.ready, where="pre", color="tab:green", label="up")
        replicas.legend(loc="upper left", fontsize="small")
        latency.plot(s.t_s, s.p99_ms, color="tab:red")
        latency.axhline(r.slo_ms, color="grey", linestyle="--", linewidth=1)
        latency.set_yscale("log")
        latency.set_xlabel("time (s)")
        if col == 0:
            load.set_ylabel("requests/s")
            replicas.set_ylabel("replicas")
            latency.set_ylabel("p99 ms (SLO dashed)")
    save_figure(fig, path)


__all__ = ["past_curve_note", "plot", "print_results", "results_table", "to_json", "write_json"]
