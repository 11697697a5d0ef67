"""How ``frugal check`` runs from the command line: read, price, compare, print, verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from frugal.optimize.check import (
    Comparison,
    EndpointCost,
    baseline_to_json,
    compare,
    read_baseline,
)
from frugal.optimize.check_pricing import ShareSources, default_profile_paths, price_config
from frugal.optimize.plan_report import plan_console, write_json
from frugal.optimize.profiles import read_profiles
from frugal.optimize.route_shares import read_calibration
from frugal.optimize.throughput import END_TO_END


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _usd(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.4g}"


def _batch(cost: EndpointCost) -> str:
    served = [p for p in cost.parts if p.role != "shadow"]
    if len(served) < 2:
        return str(cost.batch_size)
    return (" > " if cost.route == "cascade" else " | ").join(str(p.batch_size) for p in served)


def comparison_table(rows: Sequence[Comparison], max_increase: float) -> Table:
    table = Table(title=f"frugal check: $ per 1k requests, max increase {max_increase:.0%}")
    shadows = any(c is not None and c.shadow_usd_per_1k for r in rows for c in (r.before, r.now))
    columns = ["endpoint", "model", "batch", "baseline $/1k", "now $/1k", "change",
               "billed before", "billed now", "billed change", "verdict"]  # fmt: skip
    if shadows:  # a shadow copy's spend answers no one: shown apart (it is in now $/1k)
        columns.insert(5, "shadow now")
    for name in columns:
        table.add_column(
            name, justify="left" if name in ("endpoint", "model", "verdict") else "right"
        )
    for r in rows:
        cost = r.now or r.before
        assert cost is not None
        cells = [
            r.endpoint,
            escape(cost.model),
            _batch(cost),
            _usd(r.before.usd_per_1k if r.before else None),
            _usd(r.now.usd_per_1k if r.now else None),
            _pct(r.change),
            _usd(r.before.billed_usd_per_1k if r.before else None),
            _usd(r.now.billed_usd_per_1k if r.now else None),
            _pct(r.billed_change),
            _verdict(r),
        ]
        if shadows:
            shadow = r.now.shadow_usd_per_1k if r.now is not None else 0.0
            cells.insert(5, _usd(shadow or None))
        table.add_row(*cells)
    return table


def _verdict(row: Comparison) -> str:
    if row.verdict == "added":
        return "[cyan]added (no baseline)[/]"
    if row.verdict == "removed":
        return "[bold red]removed[/]" if row.failed else "[cyan]removed (allowed)[/]"
    return "[bold red]fail[/]" if row.failed else "[green]ok[/]"


def _shares(cost: EndpointCost) -> str:
    """``small:1 100% > large:1 17.4%``: each served model and its share of the items."""
    joiner = " > " if cost.route == "cascade" else " | "
    return joiner.join(f"{p.model} {p.share:.1%}" for p in cost.parts if p.role != "shadow")


def route_notes(rows: Sequence[Comparison]) -> list[tuple[str, str]]:
    """What each route was priced from: shares and their source, shadows, what is not priced.

    (text, style) pairs: the text is plain (file names may hold ``[``), the style rich's.
    """
    lines: list[tuple[str, str]] = []
    for r in rows:
        now, before = r.now, r.before
        if now is None:
            continue
        name = r.endpoint
        if now.route == "cascade":
            line = f"{name}: items reaching each tier {_shares(now)}, from {now.shares_detail}"
            if before is not None and before.route == "cascade":
                if before.shares_detail == now.shares_detail:
                    line += " (as the baseline)"
                else:
                    line += f"; baseline: {_shares(before)}, from {before.shares_detail}"
            lines.append((line, ""))
            if before is not None and before.route == "cascade":
                if now.shares_source == "ledger" and before.thresholds != now.thresholds:
                    lines.append((
                        f"note: {name}'s thresholds changed since the baseline; the ledger's "
                        "shares are those of the thresholds its traffic was served at: give "
                        "--calibration FILE at the new ones", "yellow",
                    ))  # fmt: skip
                if before.shares_source != now.shares_source:
                    lines.append((
                        f"note: {name}'s baseline took its shares from the "
                        f"{before.shares_source}, this run from the {now.shares_source}: give "
                        "the same kind of source to compare like with like", "yellow",
                    ))  # fmt: skip
        elif now.route == "split":
            lines.append((f"{name}: versions {_shares(now)}, by {now.shares_detail}", ""))
        elif now.route == "fallback":
            lines.append((
                f"{name}: a fallback list, priced as its first model {now.model} (the others "
                "answer only its errors)", "",
            ))  # fmt: skip
        for p in now.parts:
            if p.role == "shadow":
                lines.append((
                    f"{name}: shadow {p.model} on {p.share:.0%} of requests: "
                    f"${p.share * p.usd_per_1k:.4g} per 1k, included in now $/1k", "",
                ))  # fmt: skip
        if now.figures == END_TO_END and now.server_cpu_s_per_request is not None:
            lines.append((
                f"{name}: end-to-end profile: a replica is capped by the server's measured CPU, "
                f"{1000 * now.server_cpu_s_per_request:.3f} ms per request", "",
            ))  # fmt: skip
        else:
            lines.append((
                f"{name}: model-only profile: the server's own CPU is not counted (frugal "
                "profile CONFIG --model NAME --http measures it)", "",
            ))  # fmt: skip
        if before is not None and before.figures != now.figures:
            lines.append((
                f"note: {name}'s baseline was priced from a {before.figures}, this run from an "
                f"{now.figures}: the change is the accounting's, not the model's; "
                "`frugal check --update` records the new figures", "yellow",
            ))  # fmt: skip
        if now.not_priced:
            lines.append((
                f"{name}: {now.not_priced} (route.rules) not priced: the route is priced as if "
                "no rule matched", "",
            ))  # fmt: skip
    return lines


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
    calibration_paths: Sequence[Path] = (),
    ledger_path: Path | None = None,
    since_ts: float = 0.0,
    since: str = "7d",
    console: Console | None = None,
) -> bool:
    """Price the config and compare with (or, with ``update``, rewrite) the baseline.

    Returns whether the gate passes. Inputs come from the options, else from the baseline. A
    cascade's tier shares come from ``calibration_paths``, else the ledger (``ledger_path``,
    default the config's) since ``since_ts``, else the baseline (check_pricing.py).
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
    if ledger_path is not None and not ledger_path.is_file():
        raise InvalidInput(f"{ledger_path}: no ledger here", field="--ledger",
                           hint="--ledger names the ledger file `frugal serve` writes")  # fmt: skip
    if ledger_path is None and config.ledger.enabled and config.ledger.url is None:
        # A CI gate reads no database: with ledger.url, shares come from --calibration, a
        # --ledger file, or the baseline (docs/ledger.md).
        ledger_path = config.ledger.path  # read only if it exists
    sources = ShareSources(
        calibrations=[read_calibration(p) for p in calibration_paths], ledger=ledger_path,
        since_ts=since_ts, since=since, baseline=baseline.endpoints if baseline else {},
    )  # fmt: skip
    pricer, costs = price_config(
        config, profiles, qps=qps, headroom=headroom, catalog=load_catalog(),
        config_file=str(config_path), shares=sources,
    )  # fmt: skip
    console.print(
        f"{config_path}: {pricer.instance} at ${pricer.price_usd_per_hour:g}/h over "
        f"{pricer.slots} slot(s); {qps:g} requests/s per endpoint, headroom {headroom:.0%}"
    )
    rows = compare(baseline.endpoints if baseline else {}, costs, max_increase,
                   allow_removed=allow_removed or update)  # fmt: skip
    console.print(comparison_table(rows, max_increase))
    for line, style in route_notes(rows):
        console.print(line, style=style or None, markup=False, highlight=False)
    if update:
        write_json(baseline_path, baseline_to_json(pricer, costs, qps=qps, headroom=headroom))
        console.print(f"wrote {baseline_path} ({len(costs)} endpoint(s))")
        return True
    return _verdicts(rows, max_increase, config_path, baseline_path, console)


def _verdicts(rows: Sequence[Comparison], max_increase: float, config_path: Path,
              baseline_path: Path, console: Console) -> bool:  # fmt: skip
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
