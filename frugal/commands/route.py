"""``frugal route``: a running server's split weights: show, set, promote, roll back.

Thin: each verb is one call of ``/admin/endpoints/{name}/route`` (docs/routing.md#splits); the
server applies, stores and audits the change, with the --key's name as who made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from frugal.commands.admin_client import CONFIG, KEY, URL, call_admin, server_url
from frugal.errors import InvalidInput

_ENDPOINT = click.argument("endpoint")


@click.group()
def route() -> None:
    """Split weights of a running server: show, set, promote (blue-green), roll back."""


def _path(endpoint: str) -> str:
    return f"/admin/endpoints/{endpoint}/route"


def _print_change(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['endpoint']}: split weights")
    for name in ("version", "before", "after"):
        table.add_column(name, justify="left" if name == "version" else "right")
    for version, after in result["after"].items():
        table.add_row(version, f"{result['before'][version]:g}", f"{after:g}")
    Console().print(table)


@route.command("show")
@_ENDPOINT
@URL
@CONFIG
@KEY
def show(endpoint: str, url: str | None, config_path: Path, key: str | None) -> None:
    """Current and configured weights of ENDPOINT's split, and its baseline version."""
    from rich.console import Console
    from rich.table import Table

    state = call_admin("GET", server_url(url, config_path), _path(endpoint), key)
    sticky = ", sticky per user" if state["sticky"] else ""
    table = Table(title=f"{endpoint}: split{sticky}")
    for name in ("version", "weight", "share", "configured"):
        table.add_column(name, justify="left" if name == "version" else "right")
    total = sum(state["weights"].values())
    for version, weight in state["weights"].items():
        mark = " (baseline)" if version == state["baseline"] else ""
        table.add_row(version + mark, f"{weight:g}", f"{100 * weight / total:.1f}%",
                      f"{state['configured'][version]:g}")  # fmt: skip
    Console().print(table)


@route.command("set")
@_ENDPOINT
@click.argument("weights", nargs=-1, required=True)
@URL
@CONFIG
@KEY
def set_weights(
    endpoint: str, weights: tuple[str, ...], url: str | None, config_path: Path, key: str | None
) -> None:
    """Set weights: `frugal route set digits clf:1=95 clf:2=5` (versions left out get 0)."""
    given: dict[str, float] = {}
    for pair in weights:
        version, sep, value = pair.rpartition("=")
        try:
            given[version] = float(value)
        except ValueError:
            version = ""
        if not sep or not version:
            raise InvalidInput(f"{pair!r} is not VERSION=WEIGHT", field="weights",
                               hint="e.g. clf:1=95 clf:2=5")  # fmt: skip
    body = {"weights": given}
    _print_change(call_admin("POST", server_url(url, config_path), _path(endpoint), key, body))


@route.command("promote")
@_ENDPOINT
@click.argument("version")
@URL
@CONFIG
@KEY
def promote(
    endpoint: str, version: str, url: str | None, config_path: Path, key: str | None
) -> None:
    """Send all of ENDPOINT's traffic to VERSION at once (blue-green)."""
    body = {"promote": version}
    _print_change(call_admin("POST", server_url(url, config_path), _path(endpoint), key, body))


@route.command("rollback")
@_ENDPOINT
@URL
@CONFIG
@KEY
def rollback(endpoint: str, url: str | None, config_path: Path, key: str | None) -> None:
    """All of ENDPOINT's traffic back to the config's main version (its largest weight)."""
    body = {"rollback": True}
    _print_change(call_admin("POST", server_url(url, config_path), _path(endpoint), key, body))


__all__ = ["route"]
