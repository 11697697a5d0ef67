"""The ledger's side of the live dashboard: one window's spend, over time and by group.

The totals and the per-group rows are report.py's own summary of the window (so the dashboard
and ``frugal report`` never disagree); this module adds what a report has no table for: spend
per time bucket (model, overhead and idle apart), the batches' sizes by release reason, errors
by status, the cascades' escalation rate and today's spend per key. Every query runs on a
reader from ledger_store.open_reader, so SQLite and PostgreSQL ledgers answer alike; all of it
blocks, so the server calls it from a worker thread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frugal.accounting.billing import overlap_s, run_end
from frugal.accounting.budgets import day_start
from frugal.accounting.ledger_schema import SqlReader
from frugal.accounting.report import _MODEL_USD, GroupBy, Report, ReportRow, _build, _key
from frugal.accounting.tier_costs import parse_tier_costs

GROUPINGS: tuple[GroupBy, ...] = ("endpoint", "model", "version")
# The batch size histogram's upper bounds (observability/buckets.py's BATCH_BUCKETS).
BATCH_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
RELEASE_REASONS = ("full", "max_wait", "linger", "drain")
_TIER = re.compile(r"^[^*>;]+\*(\d+)$")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One window of the ledger, ready to be written as JSON (``document``)."""

    by: GroupBy
    report: Report  # report.py's summary of the window, grouped ``by``
    bucket_starts: list[float]
    series_model_usd: list[float]
    series_overhead_usd: list[float]
    series_idle_usd: list[float]
    series_requests: list[int]
    series_by: dict[str, list[float]]  # dollars per bucket of each group
    batch_counts: dict[str, list[int]]  # release reason -> batches per size bucket
    batch_items: int
    batches: int
    queue_ms_p50: float
    queue_ms_p99: float
    statuses: dict[int, int]
    cascade: dict[str, tuple[int, int]]  # endpoint -> (items a first tier saw, items escalated)
    day_start: float
    spent_today_usd: float
    spent_today_by_key: dict[str, float] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        report = self.report
        total = report.total
        requests = total.requests
        entered = sum(e for e, _ in self.cascade.values())
        escalated = sum(x for _, x in self.cascade.values())
        return {
            "totals": {
                "requests": requests,
                "errors": total.errors,
                "error_rate": total.errors / requests if requests else 0.0,
                "items": total.items,
                "cost_usd": total.cost_usd,
                "model_usd": report.model_usd,
                "overhead_usd": report.overhead_usd,
                "usd_per_1k": total.usd_per_1k,
                "billed_usd": report.billed_usd,
                "startup_usd": report.startup_usd,
                "idle_usd": report.idle_usd,
                "unmatched_usd": report.unmatched_usd,
                "allocated_usd": report.allocated_usd,
                "utilization": report.utilization,
                "cache_hit_ratio": total.cache_hit_ratio,
                "saved_usd": total.saved_usd,
                "p50_ms": total.p50_ms,
                "p99_ms": total.p99_ms,
                "mean_batch_size": total.mean_batch_size,
            },
            "by": self.by,
            "groups": [_row(r) for r in report.rows],
            "series": {
                "t": self.bucket_starts,
                "model_usd": self.series_model_usd,
                "overhead_usd": self.series_overhead_usd,
                "idle_usd": self.series_idle_usd,
                "requests": self.series_requests,
                "by": self.series_by,
            },
            "batches": {
                "size_bounds": list(BATCH_SIZE_BOUNDS),
                "by_reason": self.batch_counts,
                "count": self.batches,
                "mean_size": self.batch_items / self.batches if self.batches else 0.0,
                "queue_ms_p50": self.queue_ms_p50,
                "queue_ms_p99": self.queue_ms_p99,
            },
            "status": {str(code): count for code, count in sorted(self.statuses.items())},
            "cascade": {
                "items": entered,
                "escalated": escalated,
                "rate": escalated / entered if entered else 0.0,
                "endpoints": {
                    name: {"items": e, "escalated": x, "rate": x / e if e else 0.0}
                    for name, (e, x) in sorted(self.cascade.items())
                },
            },
            "today": {
                "since": self.day_start,
                "spent_usd": self.spent_today_usd,
                "by_key": dict(sorted(self.spent_today_by_key.items())),
            },
        }


def _row(row: ReportRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "requests": row.requests,
        "errors": row.errors,
        "cost_usd": row.cost_usd,
        "model_usd": row.model_usd,
        "overhead_usd": row.overhead_usd,
        "usd_per_1k": row.usd_per_1k,
        "p50_ms": row.p50_ms,
        "p99_ms": row.p99_ms,
        "cache_hit_ratio": row.cache_hit_ratio,
        "saved_usd": row.saved_usd,
        "mean_batch_size": row.mean_batch_size,
    }


def begin_snapshot(db: SqlReader, *, postgres: bool) -> None:
    """Makes the reader's next queries read one state of the ledger: a running server keeps
    writing rows and heartbeats between them, and the document's parts must add up."""
    if postgres:
        db.execute("COMMIT")  # ends the transaction open_reader's table check began
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    else:
        db.execute("BEGIN")  # a WAL read transaction: one snapshot until open_reader commits


def window_stats(
    db: SqlReader,
    since: float,
    until: float,
    bucket_s: float,
    *,
    now: float,
    by: GroupBy = "endpoint",
) -> WindowStats:
    """Summarize ``[since, until]`` of the ledger behind ``db`` in buckets of ``bucket_s``,
    groups ``by`` endpoint, model or version (one grouping: each is a pass over the rows)."""
    report = _build(db, since, until, by)
    n = max(1, math.ceil((until - since) / bucket_s))
    starts = [since + i * bucket_s for i in range(n)]
    model = [0.0] * n
    overhead = [0.0] * n
    requests = [0] * n
    series: dict[str, list[float]] = {}
    cascade: dict[str, tuple[int, int]] = {}
    rows = db.execute(
        f"SELECT ts, endpoint, model, version, shadow, {_MODEL_USD}, overhead_usd, tier_costs, "
        "route FROM requests WHERE ts >= ? AND ts <= ?",
        (since, until),
    ).fetchall()
    for ts, endpoint, name, version, shadow, model_usd, overhead_usd, tiers, route in rows:
        i = min(n - 1, int((ts - since) // bucket_s))
        model[i] += model_usd
        overhead[i] += overhead_usd
        requests[i] += not shadow
        pieces = parse_tier_costs(tiers) if tiers and by != "endpoint" else []
        rest = model_usd - math.fsum(usd for _, usd in pieces)
        own = _key(by, endpoint, f"{name}:{version}", shadow)
        if by == "endpoint" or not pieces:
            _add(series, own, i, n, model_usd + overhead_usd)
        else:  # as report.py: model dollars go to each tier that ran items, the rest stays
            _add(series, own, i, n, overhead_usd + (0.0 if abs(rest) <= 1e-12 * abs(model_usd)
                                                    else rest))  # fmt: skip
            for tier, usd in pieces:
                _add(series, _key(by, endpoint, tier, shadow), i, n, usd)
        if route and not shadow:
            seen = _escalations(route)
            if seen is not None:
                entered, escalated = cascade.get(endpoint, (0, 0))
                cascade[endpoint] = (entered + seen[0], escalated + seen[1])
    idle = [
        billed - startup - busy - overhead[i]
        for i, (billed, startup, busy) in enumerate(_bucket_bills(db, starts, bucket_s, until))
    ]
    counts, batches, batch_items = _batches(db, since, until)
    queue = np.array(
        [q for (q,) in db.execute(
            "SELECT queue_ms FROM requests WHERE ts >= ? AND ts <= ? AND batch_size > 0 "
            "AND shadow = 0", (since, until)).fetchall()], dtype=np.float64,
    )  # fmt: skip
    statuses = {
        int(status): int(count)
        for status, count in db.execute(
            "SELECT status, COUNT(*) FROM requests WHERE ts >= ? AND ts <= ? AND shadow = 0 "
            "GROUP BY status", (since, until)).fetchall()
    }  # fmt: skip
    today = day_start(now)
    by_key = {
        str(key): float(usd or 0.0)
        for key, usd in db.execute(
            "SELECT key_name, SUM(cost_usd) FROM requests WHERE ts >= ? GROUP BY key_name",
            (today,)).fetchall()
    }  # fmt: skip
    return WindowStats(
        by=by,
        report=report,
        bucket_starts=starts,
        series_model_usd=model,
        series_overhead_usd=overhead,
        series_idle_usd=idle,
        series_requests=requests,
        series_by=series,
        batch_counts=counts,
        batch_items=batch_items,
        batches=batches,
        queue_ms_p50=float(np.percentile(queue, 50)) if queue.size else 0.0,
        queue_ms_p99=float(np.percentile(queue, 99)) if queue.size else 0.0,
        statuses=statuses,
        cascade=cascade,
        day_start=today,
        spent_today_usd=math.fsum(by_key.values()),
        spent_today_by_key={k: v for k, v in by_key.items() if k},
    )


def _bucket_bills(
    db: SqlReader, starts: list[float], bucket_s: float, until: float
) -> list[tuple[float, float, float]]:
    """(billed, start-up, busy) dollars of each bucket, as billing.bill_window bills a window,
    in two queries for the whole window rather than bill_window's per bucket."""
    bills = [[0.0, 0.0, 0.0] for _ in starts]
    since = starts[0]
    runs = db.execute(
        "SELECT run_id, started, stopped, heartbeat, ready, price_usd_per_hour, slots FROM runs "
        "WHERE started <= ?", (until,)).fetchall()  # fmt: skip
    last_requests: dict[str, float] = {}
    if any(stopped is None and heartbeat is None for _, _, stopped, heartbeat, *_ in runs):
        last_requests = dict(db.execute(
            "SELECT run_id, MAX(ts) FROM requests GROUP BY run_id").fetchall())  # fmt: skip
    usd_per_busy_s: dict[str, float] = {}
    for run_id, started, stopped, heartbeat, ready, price, slots in runs:
        end = run_end(started, stopped, heartbeat, last_requests.get(run_id))
        if end < since:
            continue
        ready_at = end if ready is None else min(max(ready, started), end)
        usd_per_s = price / 3600
        usd_per_busy_s[run_id] = usd_per_s / slots
        for i, start in enumerate(starts):
            stop = min(start + bucket_s, until)
            bills[i][0] += usd_per_s * overlap_s(started, end, start, stop)
            bills[i][1] += usd_per_s * overlap_s(started, ready_at, start, stop)
    for run_id, ts, busy_s in db.execute(
        "SELECT run_id, ts, busy_s FROM batches WHERE ts >= ? AND ts <= ?", (since, until)
    ).fetchall():  # fmt: skip
        i = min(len(starts) - 1, int((ts - since) // bucket_s))
        bills[i][2] += usd_per_busy_s.get(run_id, 0.0) * busy_s
    return [(b[0], b[1], b[2]) for b in bills]


def _add(series: dict[str, list[float]], key: str, i: int, n: int, usd: float) -> None:
    if key not in series:
        series[key] = [0.0] * n
    series[key][i] += usd


def _escalations(route: str) -> tuple[int, int] | None:
    """(items the first tier saw, items it escalated) of a cascade's route column, e.g.
    ``small:1*7>large:1*3`` (7 stopped at small, 3 went on); ``;`` joins the paths of one
    request's cache misses. None for a route that is no cascade's (a fallback's, an LLM's)."""
    entered = escalated = 0
    for path in route.split(";"):
        counts = []
        for tier in path.split(">"):
            match = _TIER.match(tier)
            if match is None:
                return None
            counts.append(int(match.group(1)))
        entered += sum(counts)
        escalated += sum(counts) - counts[0]
    return entered, escalated


def _batches(db: SqlReader, since: float, until: float) -> tuple[dict[str, list[int]], int, int]:
    """Batches per release reason and size bucket, how many, and the items they held."""
    counts: dict[str, list[int]] = {r: [0] * len(BATCH_SIZE_BOUNDS) for r in RELEASE_REASONS}
    batches = items = 0
    for reason, size, count in db.execute(
        "SELECT reason, size, COUNT(*) FROM batches WHERE ts >= ? AND ts <= ? "
        "GROUP BY reason, size", (since, until)).fetchall():  # fmt: skip
        bucket = next((j for j, b in enumerate(BATCH_SIZE_BOUNDS) if size <= b),
                      len(BATCH_SIZE_BOUNDS) - 1)  # fmt: skip
        counts.setdefault(str(reason), [0] * len(BATCH_SIZE_BOUNDS))[bucket] += int(count)
        batches += int(count)
        items += int(size) * int(count)
    return counts, batches, items


__all__ = [
    "BATCH_SIZE_BOUNDS",
    "GROUPINGS",
    "RELEASE_REASONS",
    "WindowStats",
    "begin_snapshot",
    "window_stats",
]
