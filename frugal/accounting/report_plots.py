"""The HTML report's figures: matplotlib (the ``plot`` extra), returned as PNG data: URLs so
the page stays one self-contained file."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from frugal.accounting.billing import bill_window
from frugal.accounting.ledger_schema import SqlReader
from frugal.accounting.report import Report
from frugal.plots import pyplot

HOUR_S, DAY_S = 3600.0, 86400.0
MAX_BUCKETS = 60
COLORS = {"model": "#2b6cb0", "overhead": "#dd6b20", "idle": "#a0aec0", "start-up": "#718096"}


@dataclass(frozen=True, slots=True)
class SpendBucket:
    """One stretch of the window: the bill's parts, as report.py splits them."""

    start: float
    model_usd: float
    overhead_usd: float
    idle_usd: float
    startup_usd: float


def spend_over_time(db: SqlReader, since: float, until: float) -> list[SpendBucket]:
    """The window cut into hours (up to 2 days), days (up to 60) or weeks, each billed like a
    report of its own (billing.bill_window) so the buckets add up to the report's bill."""
    (first,) = db.execute("SELECT MIN(started) FROM runs").fetchone()
    start = max(since, first) if first is not None else until
    if until <= start:
        return []
    span = until - start
    step = HOUR_S if span <= 2 * DAY_S else DAY_S if span <= 60 * DAY_S else 7 * DAY_S
    step = max(step, span / MAX_BUCKETS)
    start = math.floor(start / step) * step if step in (HOUR_S, DAY_S) else start
    buckets = []
    edge = start
    while edge < until:
        a, b = max(edge, since), min(edge + step, until)
        bill = bill_window(db, a, b)
        model, overhead = db.execute(
            "SELECT COALESCE(SUM(CASE WHEN model_usd = 0 AND overhead_usd = 0 THEN cost_usd "
            "ELSE model_usd END), 0), COALESCE(SUM(overhead_usd), 0) FROM requests "
            "WHERE ts >= ? AND ts < ?",
            (a, b),
        ).fetchone()
        idle = bill.billed_usd - bill.startup_usd - bill.busy_usd - overhead
        buckets.append(SpendBucket(edge, model, overhead, max(0.0, idle), bill.startup_usd))
        edge += step
    return buckets


def spend_figure(buckets: Sequence[SpendBucket]) -> str:
    """Stacked bars: each bucket's model, overhead, idle and start-up dollars."""
    plt = pyplot("--html")
    fig, ax = plt.subplots(figsize=(8, 3.2))
    step = buckets[1].start - buckets[0].start if len(buckets) > 1 else HOUR_S
    fmt = "%H:%M" if step < DAY_S else "%m-%d"
    labels = [datetime.fromtimestamp(b.start).strftime(fmt) for b in buckets]
    x = range(len(buckets))
    bottom = [0.0] * len(buckets)
    for part, values in (
        ("model", [b.model_usd for b in buckets]),
        ("overhead", [b.overhead_usd for b in buckets]),
        ("idle", [b.idle_usd for b in buckets]),
        ("start-up", [b.startup_usd for b in buckets]),
    ):
        ax.bar(x, values, bottom=bottom, label=part, color=COLORS[part], width=0.85)
        bottom = [a + v for a, v in zip(bottom, values, strict=True)]
    ax.set_xticks(list(x), labels, rotation=45 if len(buckets) > 12 else 0, fontsize=7)
    ax.set_ylabel("$")
    ax.set_title("Spend over time")
    ax.legend(fontsize=7, ncols=4)
    return _data_url(fig)


def parts_figure(report: Report, by: str) -> str:
    """Horizontal bars: each group's model and overhead dollars, then idle and start-up."""
    plt = pyplot("--html")
    names = [r.key for r in report.rows] + ["idle", "start-up"]
    model = [r.model_usd for r in report.rows] + [0.0, 0.0]
    overhead = [r.overhead_usd for r in report.rows] + [0.0, 0.0]
    other = [0.0] * len(report.rows) + [max(0.0, report.idle_usd), report.startup_usd]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.35 * len(names)))
    y = range(len(names))
    ax.barh(y, model, label="model", color=COLORS["model"])
    ax.barh(y, overhead, left=model, label="overhead", color=COLORS["overhead"])
    ax.barh(y, other, label="not allocated", color=COLORS["idle"])
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("$")
    ax.set_title(f"Where the money went, by {by}")
    ax.legend(fontsize=7)
    return _data_url(fig)


def _data_url(fig: Any) -> str:
    plt = pyplot("--html")
    try:
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=96)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


__all__ = ["SpendBucket", "parts_figure", "spend_figure", "spend_over_time"]
