"""``frugal keys``, ``audit`` and ``ledger``: who may call, what changed, what is kept.

All three work on files (the keys database and the ledger that frugal.yaml names), so they run
with or without a server; a running server sees key changes within ``auth.reload_interval_s``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from frugal.commands.durations import parse_duration, parse_since
from frugal.commands.exits import EXIT_VERDICT
from frugal.errors import ConfigError

_CONFIG = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default="frugal.yaml",
    show_default=True, help="Config naming the keys database (auth.keys) and the ledger.",
)  # fmt: skip
_LEDGER = click.option(
    "--ledger", "ledger_path", type=click.Path(path_type=Path),
    help="Ledger file (default: the one --config names).",
)  # fmt: skip


def _paths(config_path: Path) -> tuple[Path, Path]:
    """(keys database, ledger) of the config; keys need an `auth` section."""
    from frugal.config import load_config

    config = load_config(config_path)
    if config.auth is None:
        raise ConfigError(
            "no `auth` section, so the server takes no keys",
            field="auth",
            file=str(config_path),
            hint="add `auth: {keys: frugal-keys.db}` (docs/security.md)",
        )
    return config.auth.keys, config.ledger.path


def _ledger_path(ledger_path: Path | None, config_path: Path) -> Path:
    if ledger_path is not None:
        return ledger_path
    from frugal.config import load_config

    return load_config(config_path).ledger.path


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "-"


# ---- keys ----------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Create, list, revoke and rotate API keys (the secret is printed once, at creation)."""


@keys.command("create")
@click.option("--name", required=True, help="Unique name; it, never the secret, goes in logs.")
@click.option(
    "--role", type=click.Choice(["user", "viewer", "admin"]), default="user", show_default=True,
    help="user: calls endpoints; viewer: reads /metrics; admin: also /admin/... routes.",
)  # fmt: skip
@click.option("--tier", help="A label routing rules read (e.g. free, pro).")
@click.option("--endpoints", help="Comma-separated endpoints the key may call (default: all).")
@click.option(
    "--rps", type=click.FloatRange(min=0, min_open=True),
    help="Requests/s limit, 0.001 to 1e6 (default: unlimited).",
)  # fmt: skip
@click.option(
    "--budget-usd-day", type=click.FloatRange(min=0, min_open=True),
    help="Dollars the key may spend per UTC day (from the ledger), at most 1e9.",
)  # fmt: skip
@click.option(
    "--tokens-day", type=click.FloatRange(min=1),
    help="Tokens the key may use per UTC day, a whole number up to 1e15 (1e6 works).",
)  # fmt: skip
@_CONFIG
def keys_create(
    name: str, role: str, tier: str | None, endpoints: str | None, rps: float | None,
    budget_usd_day: float | None, tokens_day: float | None, config_path: Path,
) -> None:  # fmt: skip
    """Create a key and print its secret on stdout, once: only its hash is stored.

    \b
    SECRET=$(frugal keys create --name team-a --role user --rps 50 --budget-usd-day 5)
    curl -H "Authorization: Bearer $SECRET" ...
    """
    from frugal.access import AuditLog, KeyStore, cli_actor

    keys_path, ledger_path = _paths(config_path)
    allowed = [e.strip() for e in endpoints.split(",") if e.strip()] if endpoints else None
    key, secret = KeyStore(keys_path).create(  # it checks the limits' bounds (exit 2 if out)
        name, role, tier=tier, endpoints=allowed, rps=rps, budget_usd_day=budget_usd_day,
        tokens_day=tokens_day,
    )  # fmt: skip
    AuditLog(ledger_path).append(
        cli_actor(), "key.create", name, role=role, tier=tier, endpoints=allowed, rps=rps,
        budget_usd_day=budget_usd_day, tokens_day=key.tokens_day,
    )  # fmt: skip
    click.echo(f"created key {name!r} (role {role}); its secret, shown this once:", err=True)
    click.echo(secret)


@keys.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@_CONFIG
def keys_list(show_all: bool, config_path: Path) -> None:
    """Keys with their role, tier and limits (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    from frugal.access import KeyStore

    keys_path, _ = _paths(config_path)
    found = KeyStore(keys_path).list(include_revoked=show_all)
    table = Table(title=f"frugal keys ({keys_path})")
    for column in ("name", "role", "tier", "endpoints", "rps", "$/day", "tokens/day", "created",
                   "state"):  # fmt: skip
        table.add_column(column)
    for k in found:
        state = f"revoked {_when(k.revoked_at)}" if k.revoked_at else "active"
        table.add_row(
            k.name, k.role, k.tier or "-", ",".join(k.endpoints) if k.endpoints else "all",
            _num(k.rps), _num(k.budget_usd_day), _num(k.tokens_day), _when(k.created_at), state,
        )  # fmt: skip
    Console().print(table)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@keys.command("revoke")
@click.argument("name")
@_CONFIG
def keys_revoke(name: str, config_path: Path) -> None:
    """Revoke NAME: its secret stops working (a running server reloads keys within a second)."""
    from frugal.access import AuditLog, KeyStore, cli_actor

    keys_path, ledger_path = _paths(config_path)
    KeyStore(keys_path).revoke(name)
    AuditLog(ledger_path).append(cli_actor(), "key.revoke", name)
    click.echo(f"revoked key {name!r}")


@keys.command("rotate")
@click.argument("name")
@_CONFIG
def keys_rotate(name: str, config_path: Path) -> None:
    """Give NAME a new secret (printed once on stdout); the old secret stops working."""
    from frugal.access import AuditLog, KeyStore, cli_actor

    keys_path, ledger_path = _paths(config_path)
    _, secret = KeyStore(keys_path).rotate(name)
    AuditLog(ledger_path).append(cli_actor(), "key.rotate", name)
    click.echo(f"rotated key {name!r}; its new secret, shown this once:", err=True)
    click.echo(secret)


# ---- audit ---------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The hash-chained audit log: key changes, admin actions, model loads, prunes."""


@audit.command("show")
@click.option("--since", help="Window start: a duration back from now (30m, 2h, 7d) or a date.")
@_LEDGER
@_CONFIG
def audit_show(since: str | None, ledger_path: Path | None, config_path: Path) -> None:
    """Audit entries, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from frugal.access import AuditLog

    path = _ledger_path(ledger_path, config_path)
    _require(path)
    entries = AuditLog(path).entries(since=parse_since(since))
    table = Table(title=f"frugal audit log ({path})")
    for column in ("#", "time (UTC)", "actor", "action", "target", "detail"):
        table.add_column(column)
    for e in entries:
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None)
        table.add_row(str(e.seq), _when(e.ts), e.actor, e.action, e.target, detail)
    Console().print(table)


@audit.command("verify")
@_LEDGER
@_CONFIG
def audit_verify(ledger_path: Path | None, config_path: Path) -> None:
    """Check the hash chain: exit 0 if intact, 1 naming the first edited or missing row."""
    from frugal.access import AuditLog

    path = _ledger_path(ledger_path, config_path)
    _require(path)
    verdict = AuditLog(path).verify()
    if verdict.ok:
        click.echo(f"audit log intact: {verdict.rows} rows; head {verdict.head}")
        click.echo("keep the head hash elsewhere to also detect removal of the newest rows")
        return
    click.secho(f"audit log BROKEN at row {verdict.broken_seq}: {verdict.reason}", fg="red",
                err=True)  # fmt: skip
    sys.exit(EXIT_VERDICT)


def _require(path: Path) -> None:
    if not path.exists():
        raise ConfigError("no ledger here yet", file=str(path), hint="run `frugal serve` first")


# ---- ledger --------------------------------------------------------------------------------


@click.group()
def ledger() -> None:
    """Maintain the ledger: delete old rows, or every row of one key."""


@ledger.command("prune")
@click.option("--older-than", help="Delete rows older than this (30d, 12h, 4w).")
@click.option("--key", "key_name", help="Delete every request row and payload of this key.")
@_LEDGER
@_CONFIG
def ledger_prune(
    older_than: str | None, key_name: str | None, ledger_path: Path | None, config_path: Path
) -> None:
    """Delete old ledger rows and payloads, or all of one key's (a deletion request).

    Expired captured payloads are always deleted. The audit log is kept, and records the prune.
    """
    from frugal.access import AuditLog, cli_actor
    from frugal.accounting.retention import prune

    if older_than is None and key_name is None:
        raise click.UsageError("give --older-than, --key, or both")
    seconds = parse_duration(older_than, "--older-than") if older_than else None
    path = _ledger_path(ledger_path, config_path)
    pruned = prune(path, older_than_s=seconds, key=key_name)
    detail: dict[str, Any] = {"older_than": older_than, "key": key_name,
                              "requests": pruned.requests, "batches": pruned.batches,
                              "runs": pruned.runs, "payloads": pruned.payloads}  # fmt: skip
    AuditLog(path).append(cli_actor(), "ledger.prune", key_name or "*", **detail)
    click.echo(
        f"deleted {pruned.requests} request rows, {pruned.batches} batch rows, "
        f"{pruned.runs} runs and {pruned.payloads} payloads from {path}"
    )


__all__ = ["audit", "keys", "ledger"]
