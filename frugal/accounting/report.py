"""Summaries of the ledger: what was served, what it cost, and what the idle machine cost.

Over a window, the bill splits into parts that add up to it exactly:

    billed = start-up + model + overhead + unmatched + idle

start-up and billed come from the runs (billing.py); model and overhead are the requests' two
shares (allocated = model + overhead); busy is the batches' busy slot time priced, and
``unmatched = busy - model`` is model work the window's requests do not carry (about 0 over a
whole run: requests are stamped when answered, batches when they start); idle is the rest,
``billed - start-up - busy - overhead``. Utilization is allocated / billed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from frugal.accounting.billing import bill_window
from frugal.accounting.ledger_schema import SqlReader
from frugal.accounting.ledger_store import open_reader, reader_errors
from frugal.accounting.tier_costs import parse_tier_costs
from frugal.config import is_postgres_url
from frugal.errors import ConfigError, InvalidInput

GroupBy = Literal["endpoint", "model", "version", "tier"]
NO_TIER = "(none)"  # by tier: the group of requests whose caller had no tier


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: str
    requests: int
    errors: int
    items: int
    p50_ms: float
    p99_ms: float
    mean_batch_size: float
    cost_usd: float  # model_usd + overhead_usd
    usd_per_1k: float
    utilization: float
    cache_hit_ratio: float = 0.0  # requests answered with no model call of their own / requests
    saved_usd: float = 0.0  # what the cache hits would have cost
    degraded: int = 0  # requests a selection rule answered more cheaply (load, deadline)
    shadow_usd: float = 0.0  # shadow copies' cost, included in cost_usd
    model_usd: float = 0.0  # the model's share; by model/version, each tier's part of it
    overhead_usd: float = 0.0  # the server's own work for the group's requests


@dataclass(frozen=True, slots=True)
class Report:
    rows: list[ReportRow]
    since: float
    until: float
    billed_usd: float  # the instance's price over the wall time frugal ran in the window
    allocated_usd: float  # model + overhead: the sum of every request's cost
    idle_usd: float  # billed - start-up - busy - overhead: capacity nobody used
    busy_usd: float  # the batches' busy seconds priced: equals model when rows reconcile
    total: ReportRow
    startup_usd: float = 0.0  # billed before each run was ready (loading its models)
    model_usd: float = 0.0  # the requests' model share
    overhead_usd: float = 0.0  # the requests' server-work share
    unmatched_usd: float = 0.0  # busy - model: model work the window's requests do not carry

    @property
    def utilization(self) -> float:
        return self.allocated_usd / self.billed_usd if self.billed_usd > 0 else 0.0


def resolve_window(
    since: float | None,
    until: float | None,
    *,
    now: float | None = None,
    names: tuple[str, str] = ("since", "until"),
) -> tuple[float, float]:
    """The window ``[since, until]`` a report covers: all of the past by default, never the future.

    An end after now is clamped to now; a start after now, or an end before the start, is an
    InvalidInput naming the option (``names``: the caller's words for them, e.g. ``--since``).
    """
    now = time.time() if now is None else now
    if since is not None and since > now:
        raise InvalidInput(
            f"{names[0]} {_when(since)} is in the future (now is {_when(now)})",
            field=names[0],
            hint="a report covers the past: give a duration back from now (2h) or an earlier date",
        )
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            f"{names[1]} {_when(until)} is before {names[0]} {_when(since)}",
            field=names[1],
            hint=f"give {names[1]} a later time than {names[0]}, or leave it out (now)",
        )
    return (0.0 if since is None else since), (now if until is None else min(until, now))


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def build_report(
    path: Path | str,
    *,
    since: float | None = None,
    until: float | None = None,
    by: GroupBy = "endpoint",
    password_env: str | None = None,
    field: str = "ledger.url",
) -> Report:
    """Read the ledger at ``path`` (a SQLite file, or a postgresql:// URL: ``password_env`` and
    ``field`` as in ledger_store.open_reader) and summarize the window [since, until] (see
    resolve_window)."""
    since, until = resolve_window(since, until)
    postgres = is_postgres_url(path)
    if not postgres and not Path(path).is_file():
        raise ConfigError("no ledger here yet", file=str(path), hint="run `frugal serve` first")
    where = {"field": field} if postgres else {"file": str(path)}
    try:
        with open_reader(path, password_env=password_env, field=field) as db:
            return _build(db, since, until, by)
    except reader_errors() as exc:
        raise ConfigError(f"not a frugal ledger: {first_line(exc)}", **where) from None
    except ValueError as exc:  # a tier_costs value that does not parse
        raise ConfigError(f"not a frugal ledger: {exc}", **where) from None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


@dataclass(slots=True)
class _Group:
    """Running sums of one group; dollars are kept as lists for math.fsum (exact totals)."""

    latency_ms: list[float] = field(default_factory=list)
    errors: int = 0
    items: int = 0
    batched_items: int = 0
    batch_weighted: float = 0.0
    hits: int = 0
    saved_usd: list[float] = field(default_factory=list)
    degraded: int = 0
    model_usd: list[float] = field(default_factory=list)
    overhead_usd: list[float] = field(default_factory=list)
    shadow_usd: list[float] = field(default_factory=list)  # the total's shadow copies
    shadow: bool = False  # a group of shadow copies: all of its cost is shadow spend

    def count(self, latency_ms: float, status: int, items: int, batch_size: float,
              cache: str, saved_usd: float, degraded: int) -> None:  # fmt: skip
        self.latency_ms.append(latency_ms)
        self.errors += status >= 400
        self.items += items
        if batch_size > 0:  # cache hits ran in no batch
            self.batched_items += items
            self.batch_weighted += batch_size * items
        self.hits += cache in ("hit", "shared")
        self.saved_usd.append(saved_usd)
        self.degraded += bool(degraded)

    def row(self, key: str, billed: float) -> ReportRow:
        requests = len(self.latency_ms)
        latency = np.array(self.latency_ms, dtype=np.float64)
        model, overhead = math.fsum(self.model_usd), math.fsum(self.overhead_usd)
        cost = model + overhead
        return ReportRow(
            key=key,
            requests=requests,
            errors=self.errors,
            items=self.items,
            p50_ms=float(np.percentile(latency, 50)) if requests else 0.0,
            p99_ms=float(np.percentile(latency, 99)) if requests else 0.0,
            mean_batch_size=self.batch_weighted / self.batched_items if self.batched_items else 0.0,
            cost_usd=cost,
            usd_per_1k=1000 * cost / requests if requests else 0.0,
            utilization=cost / billed if billed > 0 else 0.0,
            cache_hit_ratio=self.hits / requests if requests else 0.0,
            saved_usd=math.fsum(self.saved_usd),
            degraded=self.degraded,
            shadow_usd=cost if self.shadow else math.fsum(self.shadow_usd),
            model_usd=model,
            overhead_usd=overhead,
        )


# Rows written before model_usd existed (or by a writer that left both parts at 0) are all
# model share: ledger.py's LedgerRow invariant, cost_usd == model_usd + overhead_usd.
_MODEL_USD = "CASE WHEN model_usd = 0 AND overhead_usd = 0 THEN cost_usd ELSE model_usd END"


def _build(db: SqlReader, since: float, until: float, by: GroupBy) -> Report:
    # The tier column is read only by tier: a PostgreSQL ledger no server has migrated yet
    # lacks it, and the other groupings must still read it.
    tier_column = "tier" if by == "tier" else "''"
    rows = db.execute(
        "SELECT endpoint, model, version, shadow, latency_ms, status, items, batch_size, cache, "
        f"saved_usd, degraded, {_MODEL_USD}, overhead_usd, tier_costs, {tier_column} "
        "FROM requests WHERE ts >= ? AND ts <= ?",
        (since, until),
    ).fetchall()
    groups: dict[str, _Group] = {}
    total = _Group()
    for (endpoint, model, version, shadow, latency_ms, status, items, batch_size, cache,
         saved_usd, degraded, model_usd, overhead_usd, tier_costs, who) in rows:  # fmt: skip
        group = _group(groups, _key(by, endpoint, f"{model}:{version}", shadow, who), shadow)
        counted = (latency_ms, status, items, batch_size, cache, saved_usd, degraded)
        group.count(*counted)
        if not shadow:  # in the total, shadow copies add their cost but count as no request
            total.count(*counted)
        # Request counts, latency and overhead stay with the version that answered; by model
        # or version, the model dollars go to each tier that ran items (the rest stays too).
        tiers = parse_tier_costs(tier_costs) if by in ("model", "version") and tier_costs else []
        for tier, usd in tiers:
            _group(groups, _key(by, endpoint, tier, shadow), shadow).model_usd.append(usd)
        rest = model_usd - math.fsum(usd for _, usd in tiers)
        if tiers and abs(rest) <= 1e-12 * abs(model_usd):
            rest = 0.0  # the tiers' sum is model_usd but for float rounding: no crumbs
        group.model_usd.append(rest)
        group.overhead_usd.append(overhead_usd)
        total.model_usd.append(model_usd)
        total.overhead_usd.append(overhead_usd)
        if shadow:
            total.shadow_usd.append(model_usd + overhead_usd)
    bill = bill_window(db, since, until)
    total_row = total.row("total", bill.billed_usd)
    model, overhead = total_row.model_usd, total_row.overhead_usd
    return Report(
        rows=[groups[key].row(key, bill.billed_usd) for key in sorted(groups)],
        since=since,
        until=until,
        billed_usd=bill.billed_usd,
        allocated_usd=total_row.cost_usd,
        idle_usd=bill.billed_usd - bill.startup_usd - bill.busy_usd - overhead,
        busy_usd=bill.busy_usd,
        total=total_row,
        startup_usd=bill.startup_usd,
        model_usd=model,
        overhead_usd=overhead,
        unmatched_usd=bill.busy_usd - model,
    )


def _group(groups: dict[str, _Group], key: str, shadow: int) -> _Group:
    if key not in groups:
        groups[key] = _Group(shadow=bool(shadow))
    return groups[key]


def _key(by: GroupBy, endpoint: str, model_version: str, shadow: int, tier: str = "") -> str:
    """A row's group; shadow copies group apart ("digits (shadow)"): spend that answered no one."""
    key = {"endpoint": endpoint, "model": model_version.partition(":")[0],
           "version": model_version, "tier": tier or NO_TIER}[by]  # fmt: skip
    return f"{key} (shadow)" if shadow else key


__all__ = ["GroupBy", "Report", "ReportRow", "build_report", "resolve_window"]
