"""The ``frugal`` command: one thin sub-command per verb.

Errors are mapped to a message and an exit code in one place (``FrugalGroup.invoke``): a
FrugalError prints ``error: ...`` (and its hint) and exits 2, never a traceback. Exit 1 is kept
for verdicts: a command that ran and found something wrong (``check`` over budget, ``audit verify``
on a broken chain) says so and exits 1, so CI can tell "the gate said no" from "the gate is
broken".
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from frugal.commands import (
    audit,
    calibrate,
    check,
    keys,
    ledger,
    plan,
    profile,
    prune,
    quantize,
    route,
)
from frugal.commands.admin_client import CONFIG, KEY, URL, call_admin, server_url
from frugal.commands.durations import parse_since
from frugal.commands.exits import EXIT_BAD_INPUT
from frugal.errors import FrugalError


class FrugalGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FrugalError as error:
            click.secho(f"error: {error.message}", fg="red", err=True)
            if error.hint:
                click.echo(f"hint: {error.hint}", err=True)
            ctx.exit(EXIT_BAD_INPUT)


@click.group(cls=FrugalGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="frugal")
def main() -> None:
    """frugal: serve models at the lowest cost per request, and show where the money goes.

    Start with `frugal demo`, then write a frugal.yaml (see docs/config.md) and
    `frugal validate` / `frugal serve` it. `frugal report` reads the cost ledger.
    """


@main.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option("--host", help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: server.port, 8000; 0 picks a free one).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes; each has its own batchers (see docs/serving.md).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback --host without an `auth` section (warns; see docs/security.md).",
)
@click.option("--ssl-certfile", type=click.Path(path_type=Path), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", type=click.Path(path_type=Path), help="TLS private key (PEM).")
def serve(
    config: Path,
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    insecure: bool,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
) -> None:
    """Serve the models and endpoints of CONFIG (default ./frugal.yaml).

    Every model file is checked against its sha256 before the port opens. Without an `auth`
    section the server binds to loopback only. SIGTERM or Ctrl-C turns readiness off, answers
    every queued request, flushes the ledger and exits 0.
    """
    from frugal.serving import serve as run

    run(
        config, host=host, port=port, workers=workers, log_level=log_level, insecure=insecure,
        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
    )  # fmt: skip


@main.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option(
    "--load/--no-load",
    default=True,
    show_default=True,
    help="Also verify each model's sha256 and load it.",
)
def validate(config: Path, load: bool) -> None:
    """Check CONFIG: its schema, prices, model files and their sha256. Exit 1 naming the field."""
    from frugal.accounting import resolve_pricer
    from frugal.config import load_config
    from frugal.runtimes import load_model

    cfg = load_config(config)
    pricer = resolve_pricer(cfg.instance, file=str(config))
    for model in cfg.models:
        if model.upstream is not None:  # runtime openai: nothing to load, the key is read at start
            click.echo(f"  model {model.key} (openai upstream {model.upstream.base_url})")
            continue
        if load:
            load_model(model)
        click.echo(f"  model {model.key} ({model.runtime})" + (" loaded" if load else ""))
    click.echo(
        f"{config}: ok: {len(cfg.models)} model version(s), {len(cfg.endpoints)} endpoint(s), "
        f"{pricer.instance} at ${pricer.price_usd_per_hour:.4f}/h over {pricer.slots} slot(s)"
    )


@main.command()
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


@main.command()
@click.option(
    "--requests",
    "n_requests",
    type=click.IntRange(10),
    default=3000,
    show_default=True,
    help="Requests per run.",
)
@click.option("--connections", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Where models, config and ledger go (default: a new temp folder).",
)
def demo(n_requests: int, connections: int, workdir: Path | None) -> None:
    """Train the quickstart models, serve them, load them over HTTP, and show what batching saves.

    Runs the same workload three times (batching with a response cache, batching alone, and
    max_batch_size 1) against a real
    `frugal serve` process and prints requests, p50/p99, throughput, batch size and $ per 1k.
    """
    from frugal.demo import run_demo

    run_demo(n_requests=n_requests, connections=connections, workdir=workdir)


@main.group()
def cache() -> None:
    """Look at or clear the response caches of a running server (admin routes)."""


@cache.command("stats")
@URL
@CONFIG
@KEY
def cache_stats(url: str | None, config_path: Path, key: str | None) -> None:
    """Entries, bytes, evictions, hits, misses and dollars saved per cached endpoint."""
    from rich.console import Console
    from rich.table import Table

    stats = call_admin("GET", server_url(url, config_path), "/admin/cache/stats", key)
    table = Table(title="frugal caches")
    columns = ("endpoint", "store", "scope", "entries", "bytes", "evictions", "errors", "hits",
               "misses", "hit ratio", "$ saved")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in columns[:3] else "right")
    for endpoint, s in stats.items():
        lookups = s["hits"] + s["misses"]
        ratio = f"{100 * s['hits'] / lookups:.1f}%" if lookups else "-"
        table.add_row(
            endpoint, s["store"], s["scope"], f"{s['entries']:,}", f"{s['bytes']:,}",
            f"{s['evictions']:,}", f"{s['errors']:,}", f"{s['hits']:,}", f"{s['misses']:,}",
            ratio, f"{s['saved_usd']:.4g}",
        )  # fmt: skip
    Console().print(table)


@cache.command("invalidate")
@URL
@CONFIG
@KEY
@click.option("--endpoint", help="Only this endpoint's cache.")
@click.option("--model", help="Only answers computed by this model version (name:version).")
def cache_invalidate(
    url: str | None, config_path: Path, key: str | None, endpoint: str | None, model: str | None
) -> None:
    """Drop cached answers (all of them unless --endpoint / --model narrow it)."""
    body = {k: v for k, v in (("endpoint", endpoint), ("model", model)) if v is not None}
    result = call_admin("POST", server_url(url, config_path), "/admin/cache/invalidate", key, body)
    click.echo(f"invalidated {result['invalidated']} entries")


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


for command in (profile, quantize, prune, plan, check, calibrate, route, keys, audit, ledger):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
