"""The alert rules evaluated from the ledger, for users with no Prometheus (`frugal alerts check`).

The same six rules as alert_rules.py renders for Prometheus, with the same thresholds, read from
the ledger (SQLite or PostgreSQL, through ``open_reader``), the audit log (rollbacks) and the key
store (budgets). Two differences, both in the ledger's favour: p99 is the requests' own p99, not
one interpolated from histogram buckets, and a rollback is the audit log's event itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from frugal.accounting.budgets import day_start
from frugal.accounting.ledger_schema import SqlReader
from frugal.config import AlertsConfig
from frugal.observability.alert_rules import (
    BUDGET_SPENT,
    CACHE_HIT_LOW,
    CANARY_ROLLED_BACK,
    COST_RISING,
    ERROR_RATE_HIGH,
    P99_ABOVE_SLO,
)

WEEK_S = 7 * 86400.0
# Audit actions that fire the rule: the watch's automatic rollback, as frugal_rollbacks_total
# counts (an admin's `frugal route rollback` is deliberate, and pages nobody).
ROLLBACK_ACTIONS = ("route.auto_rollback",)
# A request's cache result as a share of a hit. The ledger keeps one result per request; a
# partial hit (some items cached) counts half. "bypass": the endpoint has no cache.
HIT_SHARE = {"hit": 1.0, "shared": 1.0, "partial": 0.5, "miss": 0.0}
# The same as SQL both stores run (PostgreSQL sums no booleans, so CASE, not `status >= 500`).
_IS_5XX = "CASE WHEN status >= 500 THEN 1 ELSE 0 END"
_HITS = "CASE cache " + " ".join(f"WHEN '{c}' THEN {v}" for c, v in HIT_SHARE.items()) + " END"
_LOOKED_UP = "CASE WHEN cache IN (" + ", ".join(f"'{c}'" for c in HIT_SHARE) + ") THEN 1 ELSE 0 END"


@dataclass(frozen=True, slots=True)
class Firing:
    """One rule firing for one subject (an endpoint, a key, or endpoint and canary)."""

    alert: str
    subject: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rollback:
    """An audited rollback: when, which endpoint, which version was cut, and by whom."""

    ts: float
    endpoint: str
    canary: str
    actor: str


@dataclass(frozen=True, slots=True)
class Budget:
    """An active key's daily budget of one kind (usd_day or tokens_day)."""

    key: str
    budget: str
    limit: float


def evaluate(
    db: SqlReader,
    config: AlertsConfig,
    *,
    now: float,
    rollbacks: Iterable[Rollback] = (),
    budgets: Sequence[Budget] = (),
) -> list[Firing]:
    """Every rule that fires at ``now``, in the order of docs/alerts.md."""
    window_s = config.window_minutes * 60.0
    firing = _cost_rise(db, config, now)
    window = (now - window_s, now)
    # Counts are summed by the database; latencies come back only when an endpoint has an SLO.
    counts = db.execute(
        f"SELECT endpoint, COUNT(*), SUM({_IS_5XX}), COALESCE(SUM({_HITS}), 0), SUM({_LOOKED_UP}) "
        "FROM requests WHERE ts > ? AND ts <= ? AND shadow = 0 GROUP BY endpoint ORDER BY endpoint",
        window,
    ).fetchall()
    latencies: dict[str, list[float]] = {}
    if any(config.for_endpoint(row[0]).p99_ms is not None for row in counts):
        for endpoint, latency_ms in db.execute(
            "SELECT endpoint, latency_ms FROM requests WHERE ts > ? AND ts <= ? AND shadow = 0",
            window,
        ).fetchall():
            latencies.setdefault(endpoint, []).append(latency_ms)
    w = f"{config.window_minutes}m"
    for endpoint, answered, errors, hits, looked_up in counts:
        limits = config.for_endpoint(endpoint)
        target = limits.cache_hit_ratio_min
        if target is not None and looked_up:
            ratio = float(hits) / float(looked_up)
            if ratio < target:
                firing.append(Firing(CACHE_HIT_LOW.name, endpoint, ratio, target,
                                     f"cache hit ratio over {w} is {100 * ratio:.1f}% "
                                     f"(target: {100 * target:g}%)"))  # fmt: skip
        if limits.p99_ms is not None and endpoint in latencies:
            p99 = float(np.percentile(np.array(latencies[endpoint], dtype=np.float64), 99))
            if p99 > limits.p99_ms:
                firing.append(Firing(P99_ABOVE_SLO.name, endpoint, p99, limits.p99_ms,
                                     f"p99 latency over {w} is {p99:.1f} ms "
                                     f"(SLO: {limits.p99_ms:g} ms)"))  # fmt: skip
        if limits.error_rate_max is not None:
            rate = float(errors) / float(answered)
            if rate > limits.error_rate_max:
                firing.append(Firing(ERROR_RATE_HIGH.name, endpoint, rate, limits.error_rate_max,
                                     f"{100 * rate:.1f}% of answers over {w} were 5xx "
                                     f"(limit: {100 * limits.error_rate_max:g}%)"))  # fmt: skip
    firing += _budgets(db, config, now, budgets)
    if config.canary_rollback:
        for event in sorted(rollbacks, key=lambda r: r.ts):
            if now - window_s < event.ts <= now:
                firing.append(Firing(CANARY_ROLLED_BACK.name, f"{event.endpoint}/{event.canary}",
                                     1.0, 0.0, f"canary {event.canary} was rolled back in the "
                                     f"last {w} (by {event.actor})"))  # fmt: skip
    return firing


def _per_1k(db: SqlReader, since: float, until: float) -> dict[str, float]:
    """$ per 1k requests of each endpoint with requests in (since, until]."""
    rows = db.execute(
        "SELECT endpoint, SUM(cost_usd), COUNT(*) FROM requests "
        "WHERE ts > ? AND ts <= ? AND shadow = 0 GROUP BY endpoint",
        (since, until),
    ).fetchall()
    return {e: 1000 * float(usd or 0) / int(n) for e, usd, n in rows if n}


def _cost_rise(db: SqlReader, config: AlertsConfig, now: float) -> list[Firing]:
    span = config.cost_window_hours * 3600.0
    this_week = _per_1k(db, now - span, now)
    last_week = _per_1k(db, now - WEEK_S - span, now - WEEK_S)
    limit = 1 + config.cost_rise_max
    out = []
    for endpoint, usd in sorted(this_week.items()):
        before = last_week.get(endpoint)
        if before is None or before <= 0:
            continue  # nothing to compare with: no alert on a new endpoint
        ratio = usd / before
        if ratio > limit:
            out.append(Firing(COST_RISING.name, endpoint, ratio, limit,
                              f"$ per 1k requests over the last {config.cost_window_hours}h is "
                              f"${usd:.4g}, {100 * ratio:.0f}% of the same hours a week earlier "
                              f"(${before:.4g}; limit: {100 * limit:g}%)"))  # fmt: skip
    return out


def _budgets(
    db: SqlReader, config: AlertsConfig, now: float, budgets: Sequence[Budget]
) -> list[Firing]:
    if not budgets:
        return []
    rows = db.execute(
        "SELECT key_name, SUM(cost_usd), SUM(tokens) FROM requests "
        "WHERE ts >= ? AND ts <= ? AND key_name != '' GROUP BY key_name",
        (day_start(now), now),
    ).fetchall()
    # PostgreSQL sums BIGINT tokens as NUMERIC: float() takes both.
    spent = {k: {"usd_day": float(usd or 0), "tokens_day": float(tok or 0)} for k, usd, tok in rows}
    out = []
    for budget in budgets:
        used = spent.get(budget.key, {}).get(budget.budget, 0.0)
        share = used / budget.limit if budget.limit > 0 else math.inf
        if share >= config.budget_share:
            unit = "$" if budget.budget == "usd_day" else "tokens "
            out.append(Firing(BUDGET_SPENT.name, f"{budget.key} ({budget.budget})", share,
                              config.budget_share,
                              f"key {budget.key} has spent {100 * share:.0f}% of its daily "
                              f"{unit}{budget.limit:g} (alert at "
                              f"{100 * config.budget_share:g}%)"))  # fmt: skip
    return out


__all__ = ["ROLLBACK_ACTIONS", "Budget", "Firing", "Rollback", "evaluate"]
