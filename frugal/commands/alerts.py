"""``frugal alerts``: the alert rules for Prometheus, and the same rules checked from the ledger.

``rules`` prints Prometheus alerting rules with frugal.yaml's thresholds; ``check`` evaluates
them from the ledger for users with no Prometheus, from cron or CI: exit 0 when nothing fires,
1 when something does, 2 on bad input, 3 when the webhook could not be told (docs/alerts.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from frugal.commands.exits import EXIT_NOT_DELIVERED, EXIT_VERDICT

WEBHOOK_TIMEOUT_S = 10.0

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="frugal.yaml whose `alerts:` thresholds (and ledger) to use. Default: ./frugal.yaml "
    "when it exists, else the built-in defaults (docs/alerts.md).",
)


@click.group()
def alerts() -> None:
    """Alert rules: render them for Prometheus, or check them from the ledger."""


def _load(config_path: Path | None, *, needed: bool) -> Any:
    """The config at ``config_path``, ./frugal.yaml when it exists, else None (defaults)."""
    from frugal.config import load_config
    from frugal.errors import ConfigError

    if config_path is None:
        if not Path("frugal.yaml").is_file():
            if needed:
                raise ConfigError("no ./frugal.yaml: name the ledger with --ledger, or the "
                                  "config with --config", field="--config")  # fmt: skip
            return None
        config_path = Path("frugal.yaml")
    return load_config(config_path)


@alerts.command("rules")
@CONFIG_OPTION
def rules(config_path: Path | None) -> None:
    """Print Prometheus alerting rules with the config's thresholds (YAML on stdout).

    \b
      frugal alerts rules --config frugal.yaml > alerts.yml
      promtool check rules alerts.yml
    """
    from frugal.config import AlertsConfig
    from frugal.observability import render_rules

    config = _load(config_path, needed=False)
    thresholds = (config.alerts if config is not None else None) or AlertsConfig()
    click.echo(render_rules(thresholds), nl=False)


@alerts.command("check")
@CONFIG_OPTION
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(),  # a str as given: a postgresql:// URL must not become a Path
    help="Ledger file, or postgresql://user@host:port/db. Default: the ledger the config names.",
)
@click.option(
    "--webhook",
    "webhook_url",
    help="POST a JSON notification here when an alert fires. Default: alerts.webhook_url.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json prints the same body the webhook gets.",
)
def check(
    config_path: Path | None, ledger_path: str | None, webhook_url: str | None, fmt: str
) -> None:
    """Evaluate the alert rules from the ledger: exit 1 when any fires, 0 when none does.

    The six rules of `frugal alerts rules` with the same thresholds: $ per 1k up week over week,
    cache hit ratio below target, p99 above the SLO, 5xx rate above the limit, an API key's
    daily budget mostly spent, a canary rolled back. For cron or CI; exit 3 when the webhook
    could not be told (what fires is printed anyway).
    """
    from frugal.config import AlertsConfig

    if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="--webhook")
    config = _load(config_path, needed=ledger_path is None)
    thresholds = (config.alerts if config is not None else None) or AlertsConfig()
    url = webhook_url or thresholds.webhook_url
    now = time.time()
    firing = _evaluate(config, ledger_path, thresholds, now)
    body = {
        "source": "frugal",
        "checked_at": now,
        "firing": [f.to_dict() for f in firing],
    }
    if fmt == "json":
        click.echo(json.dumps(body, indent=2))
    else:
        _print(firing)
    delivered = True
    if firing and url is not None:
        delivered = _notify(url, body)
    if not delivered:
        raise SystemExit(EXIT_NOT_DELIVERED)
    if firing:
        raise SystemExit(EXIT_VERDICT)


def _evaluate(config: Any, ledger_path: str | None, thresholds: Any, now: float) -> list[Any]:
    from frugal.accounting import ledger_location
    from frugal.accounting.ledger_store import open_reader, reader_errors
    from frugal.config import is_postgres_url
    from frugal.errors import ConfigError
    from frugal.observability import evaluate

    password_env, field = None, "--ledger"
    location: str | Path
    if ledger_path is None:
        ledger = config.ledger
        location, password_env, field = ledger_location(ledger), ledger.password_env, "ledger.url"
    else:
        location = ledger_path if is_postgres_url(ledger_path) else Path(ledger_path)
    postgres = is_postgres_url(location)
    if not postgres and not Path(location).is_file():
        raise ConfigError("no ledger here yet", file=str(location), hint="run `frugal serve` first")
    # The audit log (rollbacks) lives in the SQLite file: the ledger itself, else ledger.path.
    audit_file = Path(location) if not postgres else (config.ledger.path if config else None)
    rollbacks = _rollbacks(audit_file, now - thresholds.window_minutes * 60.0)
    budgets = _budgets(config)
    where = {"field": field} if postgres else {"file": str(location)}
    try:
        with open_reader(location, password_env=password_env, field=field) as db:
            return evaluate(db, thresholds, now=now, rollbacks=rollbacks, budgets=budgets)
    except reader_errors() as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise ConfigError(f"not a frugal ledger: {first}", **where) from None


def _rollbacks(audit_file: Path | None, since: float) -> list[Any]:
    from frugal.access import AuditLog
    from frugal.observability import ROLLBACK_ACTIONS, Rollback

    if audit_file is None or not Path(audit_file).is_file():
        return []
    out = []
    for entry in AuditLog(Path(audit_file)).entries(since=since):
        if entry.action in ROLLBACK_ACTIONS:
            before, after = entry.detail.get("before") or {}, entry.detail.get("after") or {}
            cut = [v for v, w in before.items() if w and not after.get(v)]
            canary = ",".join(cut) or "?"  # the version(s) whose weight went to 0
            out.append(Rollback(entry.ts, entry.target, canary, entry.actor))
    return out


def _budgets(config: Any) -> list[Any]:
    """Active keys' daily budgets, from the key store the config's `auth` names."""
    from frugal.access import KeyStore
    from frugal.observability import Budget

    if config is None or config.auth is None or not Path(config.auth.keys).is_file():
        return []
    out = []
    for key in KeyStore(config.auth.keys).list(include_revoked=False):
        if key.budget_usd_day is not None:
            out.append(Budget(key.name, "usd_day", key.budget_usd_day))
        if key.tokens_day is not None:
            out.append(Budget(key.name, "tokens_day", float(key.tokens_day)))
    return out


def _print(firing: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not firing:
        console.print("no alert fires")
        return
    table = Table(title=f"frugal alerts: {len(firing)} firing")
    for name in ("alert", "subject", "what"):
        table.add_column(name)
    for f in firing:
        table.add_row(f.alert, f.subject, f.message)
    console.print(table)


def _notify(url: str, body: dict[str, Any]) -> bool:
    """POST the alerts; a failure is reported on stderr and returns False (never raises)."""
    import httpx

    try:
        response = httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        click.secho(f"error: webhook {url}: {type(exc).__name__}: {exc}", fg="red", err=True)
        return False
    if response.status_code >= 300:
        click.secho(f"error: webhook {url} answered {response.status_code}", fg="red", err=True)
        return False
    click.echo(f"notified {url} ({response.status_code})", err=True)
    return True


__all__ = ["alerts"]
