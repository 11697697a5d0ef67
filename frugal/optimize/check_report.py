"""How ``frugal check`` runs from the command line: read, price, compare, print, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from frugal.optimize.check import (
    Comparison,
    baseline_to_json,
    compare,
    default_profile_paths,
    price_config,
    read_baseline,
)
from frugal.optimize.plan_report import plan_console, write_json
from frugal.optimize.profiles import read_profiles


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _usd(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.4g}"


def comparison_table(rows: Sequence[Comparison], max_increase: float) -> Table:
    table = Table(title=f"frugal check: $ per 1k requests, max increase {max_increase:.0%}")
    columns = ("endpoint", "model", "batch", "baseline $/1k", "now $/1k", "change",
               "billed before", "billed now", "billed change", "verdict")  # fmt: skip
    for name in columns:
        table.add_column(
            name, justify="left" if name in ("endpoint", "model", "verdict") else "right"
        )
    for r in rows:
        cost = r.now or r.before
        assert cost is not None
        table.add_row(
            r.endpoint,
            cost.model,
            str(cost.batch_size),
            _usd(r.before.usd_per_1k if r.before else None),
            _usd(r.now.usd_per_1k if r.now else None),
            _pct(r.change),
            _usd(r.before.billed_usd_per_1k if r.before else None),
            _usd(r.now.billed_usd_per_1k if r.now else None),
            _pct(r.billed_change),
            _verdict(r),
        )
    return table


def _verdict(row: Comparison) -> str:
    if row.verdict == "added":
        return "[cyan]added (no baseline)[/]"
    if row.verdict == "removed":
        return "[bold red]removed[/]" if row.failed else "[cyan]removed (allowed)[/]"
    return "[bold red]fail[/]" if row.failed else "[green]ok[/]"


def run_check(
    *,
    baseline_path: Path,
    config_path: Path,
    profile_paths: Sequence[Path] = (),
    qps: float | None = None,
    headroom: float | None = None,
    max_increase: float = 0.1,
    update: bool = False,
    allow_removed: bool = False,
    console: Console | None = None,
) -> bool:
    """Price the config and compare with (or, with ``update``, rewrite) the baseline.

    Returns whether the gate passes. Inputs come from the options, else from the baseline.
    """
    from frugal.accounting.catalog import load_catalog
    from frugal.config import load_config
    from frugal.errors import InvalidInput

    console = console or plan_console()
    baseline = None
    if not update or (qps is None and baseline_path.exists()):
        baseline = read_baseline(baseline_path)
    elif baseline_path.exists():
        try:  # shown as "before"; a broken one is being replaced, so it may stay unread
            baseline = read_baseline(baseline_path)
        except InvalidInput:
            baseline = None
    qps = qps if qps is not None else baseline.qps if baseline else None
    if qps is None:
        raise InvalidInput(
            "no request rate: the baseline is new", hint="pass --qps N with the first --update"
        )
    headroom = headroom if headroom is not None else baseline.headroom if baseline else 0.7
    config = load_config(config_path)
    profiles = read_profiles(list(profile_paths) or default_profile_paths(config_path))
    pricer, costs = price_config(
        config, profiles, qps=qps, headroom=headroom, catalog=load_catalog(),
        config_file=str(config_path),
    )  # fmt: skip
    console.print(
        f"{config_path}: {pricer.instance} at ${pricer.price_usd_per_hour:g}/h over "
        f"{pricer.slots} slot(s); {qps:g} requests/s per endpoint, headroom {headroom:.0%}"
    )
    rows = compare(baseline.endpoints if baseline else {}, costs, max_increase,
                   allow_removed=allow_removed or update)  # fmt: skip
    console.print(comparison_table(rows, max_increase))
    if update:
        write_json(baseline_path, baseline_to_json(pricer, costs, qps=qps, headroom=headroom))
        console.print(f"wrote {baseline_path} ({len(costs)} endpoint(s))")
        return True
    added = [r.endpoint for r in rows if r.verdict == "added"]
    if added:
        console.print(
            f"added: {', '.join(added)} (not in the baseline, so not compared; "
            "`--update` records it)"
        )
    rose = [r.endpoint for r in rows if r.verdict == "fail"]
    removed = [r.endpoint for r in rows if r.verdict == "removed" and r.failed]
    if rose:
        console.print(
            f"[bold red]cost gate failed[/]: {', '.join(rose)} rose more than "
            f"{max_increase:.0%}; if intended, run with --update and commit {baseline_path}"
        )
    if removed:
        console.print(
            f"[bold red]cost gate failed[/]: {', '.join(removed)} in the baseline but not in "
            f"{config_path} (removed or renamed: a renamed endpoint's cost is compared with "
            "nothing); if intended, pass --allow-removed, or run with --update and commit "
            f"{baseline_path}"
        )
    if rose or removed:
        return False
    console.print(f"[green]cost gate passed[/]: no endpoint rose more than {max_increase:.0%}")
    return True
