"""Summaries of the ledger: what was served, what it cost, and what the idle machine cost.

Utilization is allocated / billed: allocated dollars are busy slot-seconds x price / slots, so
their ratio to the billed wall time is the share of the machine that did work.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from frugal.accounting.ledger import connect, ensure_schema
from frugal.errors import ConfigError

GroupBy = Literal["endpoint", "model", "version"]


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: str
    requests: int
    errors: int
    items: int
    p50_ms: float
    p99_ms: float
    mean_batch_size: float
    cost_usd: float
    usd_per_1k: float
    utilization: float
    cache_hit_ratio: float = 0.0  # requests answered with no model call of their own / requests
    saved_usd: float = 0.0  # what the cache hits would have cost
    degraded: int = 0  # requests a selection rule answered more cheaply (load, deadline)
    shadow_usd: float = 0.0  # shadow copies' cost, included in cost_usd


@dataclass(frozen=True, slots=True)
class Report:
    rows: list[ReportRow]
    since: float
    until: float
    billed_usd: float  # the instance's price over the wall time frugal ran in the window
    allocated_usd: float  # the sum of every request's cost
    idle_usd: float  # billed - busy slot time, from the batches' own busy seconds
    busy_usd: float  # the batches' busy seconds priced: equals allocated when rows reconcile
    total: ReportRow


def build_report(
    path: Path, *, since: float | None = None, until: float | None = None, by: GroupBy = "endpoint"
) -> Report:
    """Read the ledger at ``path`` (read-only) and summarize the window [since, until]."""
    if not Path(path).is_file():
        raise ConfigError("no ledger here yet", file=str(path), hint="run `frugal serve` first")
    until = time.time() if until is None else until
    since = 0.0 if since is None else since
    try:
        db = connect(path)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"not a frugal ledger: {exc}", file=str(path)) from None
    try:
        ensure_schema(db)  # a ledger from an older frugal lacks newer columns
        return _build(db, since, until, by)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"not a frugal ledger: {exc}", file=str(path)) from None
    finally:
        db.close()


def _build(db: sqlite3.Connection, since: float, until: float, by: GroupBy) -> Report:
    column = {"endpoint": "endpoint", "model": "model", "version": "model || ':' || version"}[by]
    # Shadow copies group apart ("digits (shadow)"): spend that answered no one.
    rows = db.execute(
        f"SELECT CASE WHEN shadow THEN {column} || ' (shadow)' ELSE {column} END, latency_ms, "
        "status, items, batch_size, cost_usd, cache, saved_usd, degraded, shadow FROM requests "
        "WHERE ts >= ? AND ts <= ? ORDER BY 1",
        (since, until),
    ).fetchall()
    billed, busy = _billed_and_busy(db, since, until)
    groups: dict[str, list[_Values]] = {}
    for key, *values in rows:
        groups.setdefault(key, []).append(tuple(values))
    report_rows = [_row(key, values, billed) for key, values in groups.items()]
    total = _row("total", [v for values in groups.values() for v in values], billed)
    return Report(
        rows=report_rows,
        since=since,
        until=until,
        billed_usd=billed,
        allocated_usd=total.cost_usd,
        idle_usd=billed - busy,
        busy_usd=busy,
        total=total,
    )


def _billed_and_busy(db: sqlite3.Connection, since: float, until: float) -> tuple[float, float]:
    """Billed: each run's price over its overlap with the window. Busy: batches priced by run."""
    runs = db.execute(
        "SELECT r.run_id, r.started, r.stopped, (SELECT MAX(ts) FROM requests q "
        "WHERE q.run_id = r.run_id), r.price_usd_per_hour, r.slots, r.pid FROM runs r"
    ).fetchall()
    billed = busy = 0.0
    now = time.time()
    for run_id, started, stopped, last_request, price, slots, pid in runs:
        # A run without an end is still serving (bill it to now) or was killed (bill it to its
        # last request: the best evidence of when it stopped).
        end = stopped
        if end is None:
            end = now if _alive(pid) else (last_request or started)
        overlap = max(0.0, min(end, until) - max(started, since))
        billed += price / 3600 * overlap
        (busy_s,) = db.execute(
            "SELECT COALESCE(SUM(busy_s), 0) FROM batches WHERE run_id = ? AND ts >= ? AND ts <= ?",
            (run_id, since, until),
        ).fetchone()
        busy += price / 3600 * busy_s / slots
    return billed, busy


def _alive(pid: int) -> bool:
    """Whether a process of that pid runs on this machine (the ledger is a local file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_Values = tuple[float, int, int, float, float, str, float, int, int]


def _row(key: str, values: list[_Values], billed: float) -> ReportRow:
    """A group's row; in the total, shadow copies add their cost but count as no request."""
    everything = values
    if key == "total":
        values = [v for v in values if not v[8]]
    cost = float(sum(v[4] for v in everything))
    shadow_usd = float(sum(v[4] for v in everything if v[8]))
    latency = np.array([v[0] for v in values], dtype=np.float64)
    items = sum(v[2] for v in values)
    batched = [v for v in values if v[3] > 0]  # cache hits ran in no batch
    batched_items = sum(v[2] for v in batched)
    batch_weighted = sum(v[3] * v[2] for v in batched)
    return ReportRow(
        key=key,
        requests=len(values),
        errors=sum(1 for v in values if v[1] >= 400),
        items=items,
        p50_ms=float(np.percentile(latency, 50)) if len(latency) else 0.0,
        p99_ms=float(np.percentile(latency, 99)) if len(latency) else 0.0,
        mean_batch_size=batch_weighted / batched_items if batched_items else 0.0,
        cost_usd=cost,
        usd_per_1k=1000 * cost / len(values) if values else 0.0,
        utilization=cost / billed if billed > 0 else 0.0,
        cache_hit_ratio=(
            sum(1 for v in values if v[5] in ("hit", "shared")) / len(values) if values else 0.0
        ),
        saved_usd=float(sum(v[6] for v in values)),
        degraded=sum(1 for v in values if v[7]),
        shadow_usd=shadow_usd,
    )


__all__ = ["GroupBy", "Report", "ReportRow", "build_report"]
