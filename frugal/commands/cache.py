"""``frugal cache stats|invalidate``: a running server's response caches, over its admin API."""

from __future__ import annotations

from pathlib import Path

import click

from frugal.commands.admin_client import CONFIG, KEY, URL, call_admin, server_url


@click.group()
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


__all__ = ["cache"]
