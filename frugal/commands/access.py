"""``frugal keys``, ``audit`` and ``ledger``: who may call, what changed, what is kept.

All three work on files (the keys database and the ledger that frugal.yaml names), so they run
with or without a server; a running server sees key changes within ``auth.reload_interval_s``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from frugal.commands.durations import parse_duration, parse_since
from frugal.commands.exits import EXIT_VERDICT
from frugal.errors import ConfigError

if TYPE_CHECKING:
    from frugal.access import AuditEntry, AuditLog, Head
    from frugal.config import LedgerConfig

_CONFIG = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default="frugal.yaml",
    show_default=True, help="Config naming the keys database (auth.keys) and the ledger.",
)  # fmt: skip
_LEDGER = click.option(
    "--ledger", "ledger_path", type=click.Path(path_type=Path),
    help="Ledger file (default: the one --config names).",
)  # fmt: skip


def _paths(config_path: Path) -> tuple[Path, LedgerConfig]:
    """(keys database, ledger section) of the config; keys need an `auth` section."""
    from frugal.config import load_config

    config = load_config(config_path)
    if config.auth is None:
        raise ConfigError(
            "no `auth` section, so the server takes no keys",
            field="auth",
            file=str(config_path),
            hint="add `auth: {keys: frugal-keys.db}` (docs/security.md)",
        )
    return config.auth.keys, config.ledger


def _audit_log(ledger: LedgerConfig) -> AuditLog:
    """The config's audit log, checked before the command changes anything it then audits."""
    from frugal.access import AuditLog

    log = AuditLog.from_config(ledger)
    log.check_append()
    return log


def _exported(entry: AuditEntry) -> None:
    """The new head on stderr: the command's one log line, as the server logs each append."""
    click.echo(f"audit head {entry.seq}:{entry.hash}", err=True)


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
    from frugal.access import KeyStore, cli_actor

    keys_path, ledger = _paths(config_path)
    audit_log = _audit_log(ledger)
    allowed = [e.strip() for e in endpoints.split(",") if e.strip()] if endpoints else None
    key, secret = KeyStore(keys_path).create(  # it checks the limits' bounds (exit 2 if out)
        name, role, tier=tier, endpoints=allowed, rps=rps, budget_usd_day=budget_usd_day,
        tokens_day=tokens_day,
    )  # fmt: skip
    _exported(audit_log.append(
        cli_actor(), "key.create", name, role=role, tier=tier, endpoints=allowed, rps=rps,
        budget_usd_day=budget_usd_day, tokens_day=key.tokens_day,
    ))  # fmt: skip
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
    from frugal.access import KeyStore, cli_actor

    keys_path, ledger = _paths(config_path)
    audit_log = _audit_log(ledger)
    KeyStore(keys_path).revoke(name)
    _exported(audit_log.append(cli_actor(), "key.revoke", name))
    click.echo(f"revoked key {name!r}")


@keys.command("rotate")
@click.argument("name")
@_CONFIG
def keys_rotate(name: str, config_path: Path) -> None:
    """Give NAME a new secret (printed once on stdout); the old secret stops working."""
    from frugal.access import KeyStore, cli_actor

    keys_path, ledger = _paths(config_path)
    audit_log = _audit_log(ledger)
    _, secret = KeyStore(keys_path).rotate(name)
    _exported(audit_log.append(cli_actor(), "key.rotate", name))
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
@click.option(
    "--key-file", type=click.Path(path_type=Path),
    help="The chain's HMAC key file (default: ledger.audit_key_file of the config).",
)  # fmt: skip
@click.option(
    "--expect-head", metavar="SEQ:HASH|HASH|@FILE",
    help="Exit 1 unless this row is in the chain: a head from the log or a head file (@FILE). "
    "Default: ledger.audit_head_file of the config, when that file exists.",
)  # fmt: skip
@_LEDGER
@_CONFIG
def audit_verify(
    key_file: Path | None, expect_head: str | None, ledger_path: Path | None, config_path: Path
) -> None:
    """Check the hash chain: exit 0 if intact, 1 naming the first edited or missing row.

    Exit 1 too when the audit table is missing, when a key is given but no row is keyed, and
    when the expected head is not in the chain (newest rows deleted, the table replaced). Keyed
    rows need the key (--key-file or ledger.audit_key_file): without it, exit 2 says so.

    \b
    frugal audit verify --config frugal.yaml
    frugal audit verify --ledger frugal-ledger.db --key-file audit.key --expect-head @audit.head
    """
    log = _anchored(ledger_path, config_path, key_file)
    expected, source = _expected_head(expect_head, log.head_file)
    verdict = log.verify(expect_head=expected)
    if expected is not None and verdict.expected_head is None and verdict.ok:
        warning = f"warning: head file {source} does not exist yet: the head is not checked"
        click.secho(f"{warning} (it is written on the next append)", fg="yellow", err=True)
    if not verdict.ok:
        where = f" at row {verdict.broken_seq}" if verdict.broken_seq is not None else ""
        click.secho(f"audit log BROKEN{where}: {verdict.reason}", fg="red", err=True)
        sys.exit(EXIT_VERDICT)
    click.echo(f"audit log intact: {verdict.rows} rows; head {verdict.head}")
    unkeyed = verdict.rows - verdict.keyed_rows
    if verdict.keyed_rows and log.key is not None:
        before = f" (and {unkeyed} unkeyed rows from before the key)" if unkeyed else ""
        click.echo(f"{verdict.keyed_rows} rows keyed with key {log.key.id} (HMAC-SHA256){before}")
    elif verdict.rows:
        click.echo("unkeyed: whoever can write the ledger can rewrite this chain; "
                   "ledger.audit_key_file keys it (docs/security.md)")  # fmt: skip
    if verdict.expected_head is not None:
        click.echo(f"expected head {verdict.expected_head} ({source}) found at {verdict.anchor}")
    elif verdict.rows:
        click.echo("keep the head elsewhere to also detect removal of the newest rows: "
                   f"--expect-head {verdict.head_seq}:{verdict.head}")  # fmt: skip


@audit.command("new-key")
@click.argument("path", type=click.Path(path_type=Path))
def audit_new_key(path: Path) -> None:
    """Write a new random HMAC key to PATH (mode 600), for ledger.audit_key_file.

    \b
    frugal audit new-key /run/secrets/frugal-audit.key
    # frugal.yaml
    ledger: {path: frugal-ledger.db, audit_key_file: /run/secrets/frugal-audit.key}

    Keep the key where whoever can write the ledger cannot read it, and keep a copy: keyed
    rows cannot be verified without it. An existing file is never overwritten.
    """
    from frugal.access import write_new_key

    key = write_new_key(path)
    click.echo(f"wrote a new audit key to {path} (mode 600, key id {key.id})")
    click.echo(f"next: set `ledger.audit_key_file: {path}` in frugal.yaml (docs/security.md)")


def _anchored(ledger_path: Path | None, config_path: Path, key_file: Path | None) -> AuditLog:
    """The audit log with its anchors: those of --config, unless --ledger names another file.

    With --ledger and the default --config, frugal.yaml's key and head file apply only when it
    exists and names that same ledger, so a stray frugal.yaml never lends its key elsewhere."""
    from click.core import ParameterSource

    from frugal.access import AuditLog, read_audit_key
    from frugal.config import load_config

    ledger: LedgerConfig | None = None
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("config_path") is not ParameterSource.DEFAULT
    if ledger_path is None or explicit or config_path.is_file():
        ledger = load_config(config_path).ledger
        if ledger_path is not None and not (explicit or _same_file(ledger.path, ledger_path)):
            ledger = None
    path = ledger_path if ledger_path is not None else ledger.path if ledger else Path()
    _require(path)
    key_path = key_file if key_file is not None else ledger.audit_key_file if ledger else None
    field = "--key-file" if key_file is not None else "ledger.audit_key_file"
    key = read_audit_key(key_path, field=field) if key_path is not None else None
    return AuditLog(path, key=key, head_file=ledger.audit_head_file if ledger else None)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _expected_head(
    text: str | None, head_file: Path | None
) -> tuple[Head | Callable[[], Head | None] | None, str]:
    """The head --expect-head names, or the config's head file; and where it came from.

    A file is read by ``verify`` while appends are held off, so it agrees with the rows."""
    from frugal.access import parse_head, read_head_file

    if text is None:
        if head_file is None:
            return None, ""
        return partial(read_head_file, head_file, source="ledger.audit_head_file"), str(head_file)
    if text.startswith("@"):
        file = Path(text[1:])

        def read() -> Head:
            head = read_head_file(file, source="--expect-head")
            if head is None:
                raise ConfigError("no such head file", field="--expect-head", file=str(file))
            return head

        return read, str(file)
    return parse_head(text, source="--expect-head"), "--expect-head"


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
    from frugal.access import cli_actor
    from frugal.accounting.retention import prune

    if older_than is None and key_name is None:
        raise click.UsageError("give --older-than, --key, or both")
    seconds = parse_duration(older_than, "--older-than") if older_than else None
    audit_log = _anchored(ledger_path, config_path, None)
    audit_log.check_append()
    # The rows are in ledger.url's database where the config names one; the audit log stays in
    # the SQLite file (docs/ledger.md, "Which store").
    path: Path | str = audit_log.path
    password_env = None
    if ledger_path is None:
        from frugal.config import load_config

        config_ledger = load_config(config_path).ledger
        if config_ledger.url is not None:
            path, password_env = config_ledger.url, config_ledger.password_env
    pruned = prune(path, older_than_s=seconds, key=key_name, password_env=password_env)
    detail: dict[str, Any] = {"older_than": older_than, "key": key_name,
                              "requests": pruned.requests, "batches": pruned.batches,
                              "runs": pruned.runs, "payloads": pruned.payloads}  # fmt: skip
    _exported(audit_log.append(cli_actor(), "ledger.prune", key_name or "*", **detail))
    click.echo(
        f"deleted {pruned.requests} request rows, {pruned.batches} batch rows, "
        f"{pruned.runs} runs and {pruned.payloads} payloads from {path}"
    )


__all__ = ["audit", "keys", "ledger"]
