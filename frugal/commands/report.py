"""``frugal report``: the ledger summed by endpoint, model or version, idle time included.

CSV is one rectangular table a spreadsheet can filter and pivot: the window's own numbers
(billed, start-up, idle, ...) are repeated on every row as ``window_*`` columns rather than in a
summary row of a different shape.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from frugal.commands.durations import parse_since


@click.command()
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(),  # a str as given: a postgresql:// URL must not become a Path
    help="Ledger file, or postgresql://user@host:port/db (password from PGPASSWORD or "
    "~/.pgpass). Default: the ledger --config names (ledger.url, else ledger.path).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default="frugal.yaml",
    show_default=True,
    help="Config whose ledger to read (`ledger.url`, else `ledger.path`).",
)
@click.option(
    "--since",
    help="Window start: a duration back from now (30m, 2h, 7d) or a date; not in the future. "
    "Default: the ledger's beginning.",
)
@click.option(
    "--until",
    help="Window end, same forms as --since (2h = two hours ago); not before --since. "
    "Default: now; a later time is read as now.",
)
@click.option(
    "--by",
    type=click.Choice(["endpoint", "model", "version", "tier"]),
    default="endpoint",
    show_default=True,
    help="Group rows by endpoint, model, version (name:version) or the caller's tier (its key's "
    "tier; (none) without one). By model or version, a cascaded request's model dollars go to "
    "every cascade tier that ran its items.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="csv repeats the window's billed, start-up and idle dollars on every row (window_*).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a self-contained HTML page (figures inline) with the bill, spend by --by, each "
    "lever's savings and the week-over-week change, instead of printing. Needs frugal[plot].",
)
def report(
    ledger_path: str | None,
    config_path: Path,
    since: str | None,
    until: str | None,
    by: str,
    fmt: str,
    html_path: Path | None,
) -> None:
    """Requests, errors, latency, batch sizes, utilization and dollars, from the ledger.

    The bill splits into parts that add up to it: billed = start-up + model + overhead + idle
    (docs/cost-model.md).
    """
    from frugal.accounting import build_report, ledger_location, resolve_window
    from frugal.config import is_postgres_url, load_config

    start, end = resolve_window(
        parse_since(since, "--since"), parse_since(until, "--until"), names=("--since", "--until")
    )
    password_env, field = None, "--ledger"
    location: str | Path
    config = None
    if ledger_path is None:
        config = load_config(config_path)
        ledger = config.ledger
        location, password_env, field = ledger_location(ledger), ledger.password_env, "ledger.url"
    else:
        location = ledger_path if is_postgres_url(ledger_path) else Path(ledger_path)
    if html_path is not None:
        if config is None and config_path.is_file():  # which versions are quantized files
            config = load_config(config_path)
        write_page(html_path, location, since=start, until=end, by=by, config=config,
                   password_env=password_env, field=field)  # fmt: skip
        return
    result = build_report(location, since=start, until=end, by=by,  # type: ignore[arg-type]
                          password_env=password_env, field=field)  # fmt: skip
    rows = [asdict(r) for r in [*result.rows, result.total]]
    window = {k: getattr(result, k) for k in WINDOW_FIELDS}
    if fmt == "json":
        click.echo(json.dumps({"rows": rows, **window}, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        columns = {f"window_{k}": v for k, v in window.items()}
        writer = csv.DictWriter(out, fieldnames=[*rows[0], *columns])
        writer.writeheader()
        writer.writerows(row | columns for row in rows)
        click.echo(out.getvalue(), nl=False)
    else:
        print_report(result, by)


def write_page(path: Path, location: str | Path, *, config: Any, **window: Any) -> None:
    from frugal.accounting.report_html import render_html_report, write_html_report
    from frugal.accounting.report_levers import quantized_versions

    variants = None
    if config is not None:
        variants = quantized_versions((m.key, m.path, m.options) for m in config.models)
    write_html_report(path, render_html_report(location, variants=variants, **window))
    click.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


# The window's own numbers, in the order they add up; in JSON beside "rows", in CSV as window_*.
WINDOW_FIELDS = (
    "since",
    "until",
    "billed_usd",
    "startup_usd",
    "model_usd",
    "overhead_usd",
    "unmatched_usd",
    "idle_usd",
    "allocated_usd",
    "busy_usd",
    "utilization",
)


def print_report(result: Any, by: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"frugal report by {by}")
    for name in (by, "requests", "errors", "p50 ms", "p99 ms", "batch", "util", "$ model",
                 "$ overhead", "$ total", "$/1k", "cache hits", "$ saved"):  # fmt: skip
        table.add_column(name, justify="left" if name == by else "right")
    for i, r in enumerate([*result.rows, result.total]):
        table.add_row(
            r.key,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.mean_batch_size:.1f}",
            f"{100 * r.utilization:.1f}%",
            f"{r.model_usd:.4g}",
            f"{r.overhead_usd:.4g}",
            f"{r.cost_usd:.4g}",
            f"{r.usd_per_1k:.4g}" if r.requests else "-",  # a tier that only escalated
            f"{100 * r.cache_hit_ratio:.1f}%",
            f"{r.saved_usd:.4g}",
            end_section=i == len(result.rows) - 1,
        )
    console = Console()
    console.print(table)
    # The unmatched part is printed only where it shows at this precision (window edges).
    unmatched = f"${result.unmatched_usd:.4g}"
    show_unmatched = unmatched not in ("$0", "$-0") and abs(result.unmatched_usd) > 1e-6 * abs(
        result.billed_usd
    )
    console.print(
        f"billed ${result.billed_usd:.4g} = start-up ${result.startup_usd:.4g} "
        f"+ model ${result.model_usd:.4g} + overhead ${result.overhead_usd:.4g} "
        + (f"+ unmatched {unmatched} " if show_unmatched else "")
        + f"+ idle ${result.idle_usd:.4g}"
    )
    console.print(
        f"allocated (model + overhead) ${result.allocated_usd:.4g} = "
        f"{100 * result.utilization:.1f}% of billed; busy slot time priced ${result.busy_usd:.4g}"
    )
    if show_unmatched:
        console.print("unmatched: busy slot time in the window that its requests do not carry "
                      "(batches are stamped when they start, requests when answered)")  # fmt: skip
    total = result.total
    if total.shadow_usd:
        console.print(f"shadow copies cost ${total.shadow_usd:.4g} of the allocated dollars "
                      "(rows marked (shadow); they answered no one)")  # fmt: skip
    if total.degraded:
        share = 100 * total.degraded / total.requests
        console.print(f"{total.degraded:,} requests ({share:.1f}%) were degraded by a route rule")


__all__ = ["print_report", "report", "write_page"]
