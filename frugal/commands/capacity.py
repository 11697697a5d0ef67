"""``frugal plan | check``: the cheapest instance for a load, and the CI cost gate
(docs/plan.md, docs/cost-gate.md).
"""

from __future__ import annotations

from pathlib import Path

import click

from frugal.commands.exits import EXIT_VERDICT

_POSITIVE = click.FloatRange(min=0, min_open=True)
_HEADROOM = click.FloatRange(0, 1, min_open=True)


@click.command()
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A `frugal profile` JSON; repeat for more hardware (a cpu and a gpu:T4 profile...).",
)
@click.option("--qps", type=_POSITIVE, required=True, help="Requests per second to serve.")
@click.option("--slo-ms", type=_POSITIVE, required=True, help="p99 latency objective, in ms.")
@click.option("--budget-usd-month", type=_POSITIVE, help="Refuse choices that cost more.")
@click.option(
    "--headroom",
    type=_HEADROOM,
    default=0.7,
    show_default=True,
    help="Most a replica may be busy; replicas = ceil(qps / (capacity x headroom)).",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="batching.max_wait_ms the plan assumes (part of the latency bound); with "
    "batching.linger_ms set, give the larger of the two.",
)
@click.option(
    "--keep-warm-s",
    type=_POSITIVE,
    default=600.0,
    show_default=True,
    help="How long a serverless environment stays warm after its last request (Lambda's is "
    "not documented; 5-15 minutes is observed): sets how often a cold start happens.",
)
@click.option(
    "--provider",
    type=click.Choice(["aws", "gcp", "azure", "all"]),
    default="all",
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="frugal.yaml whose `instance:` price and slots override the catalog.",
)
@click.option(
    "--catalog",
    "catalog_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Price catalog YAML to use instead of the shipped ones (repeatable).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the plan as JSON here.")
@click.pass_context
def plan(
    ctx: click.Context,
    profile_paths: tuple[Path, ...],
    qps: float,
    slo_ms: float,
    budget_usd_month: float | None,
    headroom: float,
    max_wait_ms: float,
    keep_warm_s: float,
    provider: str,
    config_path: Path | None,
    catalog_paths: tuple[Path, ...],
    out: Path | None,
) -> None:
    """The cheapest instance type or serverless function that serves --qps within --slo-ms,
    from measured profiles.

    Only hardware with a profile is priced; other types are listed with the `frugal profile`
    command that would measure them. Every option is held to one p99 latency rule; a profile
    taken with `frugal profile --http` also counts the server's own CPU (docs/plan.md). Prints
    which figures and which prices (source, date) it used. Exit 1 when nothing meets the SLO
    (and the budget).
    """
    from frugal.optimize.plan import PlanInputs
    from frugal.optimize.plan_report import run_plan

    inputs = PlanInputs(qps=qps, slo_ms=slo_ms, headroom=headroom, provider=provider,
                        budget_usd_month=budget_usd_month, max_wait_ms=max_wait_ms,
                        keep_warm_s=keep_warm_s)  # fmt: skip
    result = run_plan(profile_paths=profile_paths, inputs=inputs, config_path=config_path,
                      catalog_paths=catalog_paths, out=out)  # fmt: skip
    if result.choice is None:
        ctx.exit(EXIT_VERDICT)


@click.command()
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              default="cost-baseline.json", show_default=True)  # fmt: skip
@click.option("--config", "config_path", type=click.Path(path_type=Path), default="frugal.yaml",
              show_default=True)  # fmt: skip
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Profile JSON (repeatable). Default: profiles/*.json next to --config.",
)
@click.option("--qps", type=_POSITIVE, help="Requests/s per endpoint (default: the baseline's).")
@click.option("--headroom", type=_HEADROOM, help="Default: the baseline's (0.7 for a new one).")
@click.option(
    "--max-increase",
    default="10%",
    show_default=True,
    help="Largest allowed rise of an endpoint's $ per 1k: 10% or 0.1.",
)
@click.option("--update", is_flag=True, help="Write the baseline from this run and exit 0.")
@click.option(
    "--calibration",
    "calibration_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A `frugal calibrate --out` file (repeatable, one per cascade): the share of items "
    "reaching each tier at the config's thresholds. Else the ledger's, else the baseline's.",
)
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    help="Ledger whose `route` column gives cascades' tier shares (default: the config's "
    "ledger.path, if it exists).",
)
@click.option(
    "--since",
    default="7d",
    show_default=True,
    help="The ledger window for tier shares: a duration back from now (30m, 2h, 7d) or a date.",
)
@click.option(
    "--allow-removed",
    is_flag=True,
    help="Pass although an endpoint of the baseline is gone from the config (removed or "
    "renamed). Without it such an endpoint fails the gate.",
)
@click.pass_context
def check(
    ctx: click.Context,
    baseline_path: Path,
    config_path: Path,
    profile_paths: tuple[Path, ...],
    qps: float | None,
    headroom: float | None,
    max_increase: str,
    update: bool,
    calibration_paths: tuple[Path, ...],
    ledger_path: Path | None,
    since: str,
    allow_removed: bool,
) -> None:
    """CI cost gate: exit 1 when an endpoint's projected $ per 1k requests rose too much, or
    an endpoint of the baseline is gone (unless --allow-removed).

    Prices each endpoint from the config, its models' profiles (matched by sha256) and the
    baseline's qps; a cascade by the share of items reaching each tier (--calibration, the
    ledger or the baseline), a split by its weights, a shadow by its sample rate. Needs no
    model runtime. See docs/cost-gate.md.
    """
    from frugal.commands.durations import parse_since
    from frugal.optimize.check import parse_increase
    from frugal.optimize.check_report import run_check

    since_ts = parse_since(since)
    assert since_ts is not None  # --since has a default
    passed = run_check(baseline_path=baseline_path, config_path=config_path,
                       profile_paths=profile_paths, qps=qps, headroom=headroom,
                       max_increase=parse_increase(max_increase), update=update,
                       allow_removed=allow_removed, calibration_paths=calibration_paths,
                       ledger_path=ledger_path, since_ts=since_ts, since=since)  # fmt: skip
    if not passed:
        ctx.exit(EXIT_VERDICT)


__all__ = ["check", "plan"]
