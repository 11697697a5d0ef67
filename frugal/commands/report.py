"""``frugal report``: the ledger summed by endpoint, model or version, idle time included."""

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
    type=click.Path(path_type=Path),
    help="Ledger file (default: the one CONFIG names).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default="frugal.yaml",
    show_default=True,
    help="Config whose `ledger.path` to read.",
)
@click.option("--since", help="Window start: a duration back from now (30m, 2h, 7d) or a date.")
@click.option(
    "--by",
    type=click.Choice(["endpoint", "model", "version"]),
    default="endpoint",
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def report(
    ledger_path: Path | None, config_path: Path, since: str | None, by: str, fmt: str
) -> None:
    """Requests, errors, latency, batch sizes, utilization and dollars, from the ledger."""
    from frugal.accounting import build_report
    from frugal.config import load_config

    if ledger_path is None:
        ledger_path = load_config(config_path).ledger.path
    result = build_report(ledger_path, since=parse_since(since), by=by)  # type: ignore[arg-type]
    rows = [asdict(r) for r in [*result.rows, result.total]]
    if fmt == "json":
        summary = {
            k: getattr(result, k)
            for k in ("since", "until", "billed_usd", "allocated_usd", "idle_usd", "busy_usd")
        }
        click.echo(json.dumps({"rows": rows, **summary}, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        print_report(result, by)


def print_report(result: Any, by: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"frugal report by {by}")
    for name in (by, "requests", "errors", "p50 ms", "p99 ms", "batch", "util", "$ total", "$/1k",
                 "cache hits", "$ saved"):  # fmt: skip
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
            f"{r.cost_usd:.4g}",
            f"{r.usd_per_1k:.4g}",
            f"{100 * r.cache_hit_ratio:.1f}%",
            f"{r.saved_usd:.4g}",
            end_section=i == len(result.rows) - 1,
        )
    console = Console()
    console.print(table)
    console.print(
        f"billed ${result.billed_usd:.4g} = allocated ${result.allocated_usd:.4g} "
        f"+ idle ${result.idle_usd:.4g} (busy slot time priced: ${result.busy_usd:.4g})"
    )
    total = result.total
    if total.shadow_usd:
        console.print(f"shadow copies cost ${total.shadow_usd:.4g} of the allocated dollars "
                      "(rows marked (shadow); they answered no one)")  # fmt: skip
    if total.degraded:
        share = 100 * total.degraded / total.requests
        console.print(f"{total.degraded:,} requests ({share:.1f}%) were degraded by a route rule")


__all__ = ["print_report", "report"]
