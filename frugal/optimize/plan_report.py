"""How ``frugal plan`` prints: the priced table, the choice, serverless, and what is missing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from frugal.errors import InvalidInput
from frugal.optimize.plan import Option, Plan, PlanInputs, PlanRow, apply_override, make_plan
from frugal.optimize.plan_json import plan_to_json
from frugal.optimize.profiles import read_profiles
from frugal.optimize.serverless import ServerlessProjection


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _priced_table(plan: Plan) -> Table:
    inputs = plan.inputs
    budget = f", budget ${inputs.budget_usd_month:,.2f}/month" if inputs.budget_usd_month else ""
    table = Table(
        title=f"frugal plan: {inputs.qps:g} requests/s, p99 SLO {inputs.slo_ms:g} ms, "
        f"headroom {inputs.headroom:.0%}{budget}"
    )
    columns = ("instance", "hardware", "$/h", "slots", "batch", "bound ms", "req/s/replica",
               "limit", "replicas", "util", "$/month", "$/1k req", "status")  # fmt: skip
    for name in columns:
        left = name in ("instance", "hardware", "status")
        table.add_column(name, justify="left" if left else "right", no_wrap=name == "instance")
    for r in plan.rows:
        table.add_row(*_cells(r, chosen=r is plan.choice))
    return table


def _cells(r: PlanRow, *, chosen: bool) -> list[str]:
    name = f"{r.provider} {r.instance}"
    p = r.projection
    if p is None:
        return [name, r.hardware_class, f"{r.price_usd_per_hour:g}", "-", "-", "-", "-", "-",
                "-", "-", "-", "-", r.status]  # fmt: skip
    return [
        f"[bold]{name}[/bold]" if chosen else name,
        r.hardware_class,
        f"{r.price_usd_per_hour:g}",
        str(p.slots),
        str(p.batch_size),
        f"{r.latency_bound_ms:.3g}",
        f"{p.capacity_items_per_s:,.0f}",
        p.limited_by,
        str(p.replicas),
        f"{p.utilization:.1%}",
        _money(p.usd_per_month),
        f"{p.usd_per_1k:.4g}",
        "[green]choice[/]" if chosen else r.status,
    ]


def plan_console() -> Console:
    """A terminal keeps its width; a log or a pipe gets room for the whole table."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def _serverless_line(s: ServerlessProjection, plan: Plan) -> str:
    slo = "meets" if s.meets_slo else "misses"
    fits = "" if s.fits else " (needs more memory than the offer allows)"
    cold = (
        f" + {1000 * s.init_s:.0f} ms init (cold starts on {s.cold_start_share:.2%})"
        if s.init_s is not None and s.latency_bound_ms > s.p99_ms
        else ""
    )
    chosen = ": [green]choice[/]" if s is plan.choice else ""
    return (
        f"serverless {s.offer}: {s.memory_mb} MB, {s.billed_ms:g} ms billed per request, "
        f"${s.usd_per_1k:.4g} per 1k requests, ${_money(s.usd_per_month)}/month at "
        f"{plan.inputs.qps:g} requests/s; bound {s.latency_bound_ms:.3g} ms (batch-1 p99 "
        f"{s.p99_ms:.3g} ms{cold}) {slo} the SLO{fits}{chosen}"
    )


def _option_cost(option: Option) -> str:
    name = option.instance if isinstance(option, PlanRow) else f"serverless {option.offer}"
    return f"{name} ${option.usd_per_month:,.2f}/month"


def print_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or plan_console()
    if plan.rows:
        console.print(_priced_table(plan))
    for r in plan.rows:
        if r.projection is None:
            console.print(f"{r.instance}: {r.status}: {r.reason}")
    for s in plan.serverless:
        console.print(_serverless_line(s, plan))
        console.print("  assumes: " + "; ".join(s.assumptions), style="dim")
    console.print(("[green]" if plan.choice else "[red]") + plan.verdict)
    if plan.runners_up:
        console.print("runners-up: " + "; ".join(_option_cost(o) for o in plan.runners_up))
    for b in plan.break_evens:
        console.print(f"break-even: {b.note}")
    for line in plan.figures:
        console.print(f"figures: {line}")
    for line in plan.catalog:
        console.print(f"prices: {line}", style="dim")
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if plan.missing:
        console.print("no profile (not priced; no latency is guessed for hardware not measured):")
        for m in plan.missing:
            console.print(f"  {m.hardware_class}: {', '.join(m.instances)}")
            lead = "take one: " if "frugal profile" in m.command else ""
            console.print(f"    {lead}{m.command}", soft_wrap=True)
    for note in plan.notes:
        console.print(f"note: {note}", style="dim")


def run_plan(
    *,
    profile_paths: Sequence[Path],
    inputs: PlanInputs,
    config_path: Path | None = None,
    catalog_paths: Sequence[Path] | None = None,
    out: Path | None = None,
    console: Console | None = None,
) -> Plan:
    """Read the profiles, catalog and config override; plan, print, and write ``out``."""
    from frugal.accounting.catalog import load_catalog, load_serverless
    from frugal.config import load_config

    profiles = read_profiles(profile_paths)
    catalog = load_catalog(catalog_paths or None)
    instance = load_config(config_path).instance if config_path is not None else None
    catalog, slots = apply_override(catalog, instance)
    plan = make_plan(
        profiles,
        catalog,
        inputs,
        serverless=load_serverless(catalog_paths or None),
        slot_overrides=slots,
    )
    print_plan(plan, console)
    if out is not None:
        write_json(out, plan_to_json(plan))
    return plan


def write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from None
