"""``frugal report --html``: the report as one self-contained page, levers and trend included.

Everything is inline (CSS, PNG figures as data: URLs), so the file can be mailed, attached to
a CI run or opened offline. Every number shown is in a ``data-field``/``data-value`` pair (the
exact value; the cell's text is it formatted), so tests and scripts read what people see. The
figures need the ``plot`` extra; without it the page is refused with a clear error.
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from frugal.accounting.ledger_store import open_reader
from frugal.accounting.report import GroupBy, Report, build_report
from frugal.accounting.report_levers import Levers, read_levers
from frugal.accounting.report_plots import parts_figure, spend_figure, spend_over_time
from frugal.errors import FrugalError
from frugal.plots import pyplot

WEEK_S = 7 * 86400.0
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:980px;padding:1rem;color:#1a202c}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;
border-bottom:1px solid #e2e8f0}h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .5rem;border-bottom:1px solid #edf2f7;text-align:right}
th:first-child,td:first-child{text-align:left}tr.total td{font-weight:600}
.muted{color:#718096}img{max-width:100%;height:auto}.scroll{overflow-x:auto}
.up{color:#c53030}.down{color:#2f855a}
"""


def render_html_report(
    location: Path | str,
    *,
    since: float | None = None,
    until: float | None = None,
    by: GroupBy = "endpoint",
    password_env: str | None = None,
    field: str = "ledger.url",
    variants: Mapping[str, str] | None = None,
) -> str:
    """The page for the ledger at ``location`` (as build_report reads it) over the window.

    ``variants``: ``{name:version: variant}`` of the config's quantized versions
    (report_levers.quantized_versions); None when no config was read."""
    pyplot("--html")  # the missing extra stops here, before any work
    read = functools.partial(build_report, location, password_env=password_env, field=field)
    report = read(since=since, until=until, by=by)
    by_endpoint = report if by == "endpoint" else read(since=report.since, until=report.until)
    end = report.until
    this_week = read(since=max(0.0, end - WEEK_S), until=end)
    last_week = read(since=max(0.0, end - 2 * WEEK_S), until=max(0.0, end - WEEK_S))
    with open_reader(location, password_env=password_env, field=field) as db:
        levers = read_levers(db, report.since, report.until, variants)
        buckets = spend_over_time(db, report.since, report.until)
    page = _Page()
    page.header(report, by, location)
    page.bill(report)
    if buckets:
        page.add(f'<img alt="Spend over time" src="{spend_figure(buckets)}">')
    page.groups(report, by)
    if report.rows:
        page.add(f'<img alt="Spend by {by}" src="{parts_figure(report, by)}">')
    page.levers(levers, by_endpoint, variants is not None)
    page.week(this_week, last_week)
    return page.html()


def write_html_report(path: Path, page: str) -> None:
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise FrugalError(f"{path}: cannot write the report: {exc.strerror}") from None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds") if ts else "the start"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:.4g}"


class _Page:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def num(self, name: str, value: float | int | None, text: str | None = None) -> str:
        """A table cell holding a number: exact in data-value, formatted in its text."""
        if value is None:
            return '<td class="muted">-</td>'
        shown = text if text is not None else _usd(value)
        return (f'<td data-field="{html.escape(name)}" data-value="{value!r}">'
                f"{html.escape(shown)}</td>")  # fmt: skip

    def table(self, head: list[str], rows: list[str]) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = (
            "".join(rows)
            if rows
            else (f'<tr><td class="muted" colspan="{len(head)}">nothing in this window</td></tr>')
        )
        self.add(f'<div class="scroll"><table><thead><tr>{cells}</tr></thead>'
                 f"<tbody>{body}</tbody></table></div>")  # fmt: skip

    def header(self, report: Report, by: str, location: Path | str) -> None:
        # A postgresql:// URL may name a user and host: shown as given (never a password).
        self.add(f"<h1>frugal report</h1><p class=\"muted\">{_when(report.since)} to "
                 f"{_when(report.until)}, by {html.escape(by)}, from "
                 f"<code>{html.escape(str(location))}</code></p>")  # fmt: skip

    def bill(self, r: Report) -> None:
        self.add("<h2>The bill</h2><p>billed = start-up + model + overhead + unmatched + idle; "
                 "allocated (model + overhead) / billed = utilization.</p>")  # fmt: skip
        rows = [
            f"<tr><td>{label}</td>{self.num(f'bill.{key}', getattr(r, key))}</tr>"
            for label, key in (
                ("billed", "billed_usd"), ("start-up", "startup_usd"), ("model", "model_usd"),
                ("overhead (the server's own work)", "overhead_usd"),
                ("unmatched (batches at the window's edges)", "unmatched_usd"),
                ("idle (capacity nobody used)", "idle_usd"), ("allocated", "allocated_usd"),
            )
        ]  # fmt: skip
        rows.append("<tr class=\"total\"><td>utilization</td>"
                    f"{self.num('bill.utilization', r.utilization, f'{100 * r.utilization:.1f}%')}"
                    "</tr>")  # fmt: skip
        self.table(["", "$"], rows)

    def groups(self, report: Report, by: str) -> None:
        self.add(f"<h2>Spend by {html.escape(by)}</h2>")
        rows = []
        for r in [*report.rows, report.total]:
            k = f"rows.{r.key}"
            cls = ' class="total"' if r is report.total else ""
            rows.append(
                f"<tr{cls}><td>{html.escape(r.key)}</td>"
                + self.num(f"{k}.requests", r.requests, f"{r.requests:,}")
                + self.num(f"{k}.errors", r.errors, f"{r.errors:,}")
                + self.num(f"{k}.p99_ms", r.p99_ms, f"{r.p99_ms:.2f}")
                + self.num(f"{k}.mean_batch_size", r.mean_batch_size, f"{r.mean_batch_size:.1f}")
                + self.num(f"{k}.model_usd", r.model_usd)
                + self.num(f"{k}.overhead_usd", r.overhead_usd)
                + self.num(f"{k}.cost_usd", r.cost_usd)
                + self.num(f"{k}.usd_per_1k", r.usd_per_1k if r.requests else None)
                + self.num(f"{k}.utilization", r.utilization, f"{100 * r.utilization:.1f}%")
                + "</tr>"
            )
        idle = report.idle_usd
        rows.append(f"<tr><td>idle</td><td></td><td></td><td></td><td></td><td></td><td></td>"
                    f"{self.num('rows.idle.cost_usd', idle)}<td></td><td></td></tr>")  # fmt: skip
        self.table([by, "requests", "errors", "p99 ms", "batch", "$ model", "$ overhead",
                    "$ total", "$/1k", "share of bill"], rows)  # fmt: skip

    def levers(self, levers: Levers, by_endpoint: Report, has_config: bool) -> None:
        self.add("<h2>What each lever saved</h2><h3>Batching</h3><p>Each version's batches as "
                 "they ran, against the same items one a batch (busy time at batch size 1 "
                 "measured, or fitted from the batch sizes seen).</p>")  # fmt: skip
        self.table(["version", "batches", "mean batch", "$ at batch 1", "$ actual", "$ saved",
                    "batch-1 time"], [
            f"<tr><td>{html.escape(b.model)}</td>"
            + self.num(f"batching.{b.model}.batches", b.batches, f"{b.batches:,}")
            + self.num(f"batching.{b.model}.mean_batch", b.mean_batch, f"{b.mean_batch:.1f}")
            + self.num(f"batching.{b.model}.batch1_usd", b.batch1_usd)
            + self.num(f"batching.{b.model}.actual_usd", b.actual_usd)
            + self.num(f"batching.{b.model}.saved_usd", b.saved_usd)
            + f"<td>{b.method}</td></tr>" for b in levers.batching])  # fmt: skip
        self.add("<h3>Cache</h3>")
        self.table(["endpoint", "requests", "hit ratio", "$ saved"], [
            f"<tr><td>{html.escape(r.key)}</td>"
            + self.num(f"cache.{r.key}.requests", r.requests, f"{r.requests:,}")
            + self.num(f"cache.{r.key}.cache_hit_ratio", r.cache_hit_ratio,
                       f"{100 * r.cache_hit_ratio:.1f}%")
            + self.num(f"cache.{r.key}.saved_usd", r.saved_usd) + "</tr>"
            for r in by_endpoint.rows])  # fmt: skip
        self.add("<h3>Cascades</h3><p>Each cascade's model dollars against every item on its "
                 "last tier, at the first tier's mean batch size.</p>")  # fmt: skip
        self.table(["endpoint", "tiers", "items", "answered per tier", "$ actual",
                    "$ last tier only", "$ saved"], [
            f"<tr><td>{html.escape(c.endpoint)}</td><td>{html.escape(' > '.join(c.tiers))}</td>"
            + self.num(f"cascade.{c.endpoint}.items", c.items, f"{c.items:,}")
            + f"<td>{' / '.join(f'{n:,}' for n in c.answered)}</td>"
            + self.num(f"cascade.{c.endpoint}.actual_usd", c.actual_usd)
            + self.num(f"cascade.{c.endpoint}.large_only_usd", c.large_only_usd)
            + self.num(f"cascade.{c.endpoint}.saved_usd", c.saved_usd) + "</tr>"
            for c in levers.cascades])  # fmt: skip
        self.add("<h3>Quantized variants</h3>")
        if not has_config:
            self.add('<p class="muted">No config read (--ledger alone): which versions are '
                     "quantized files is in frugal.yaml.</p>")  # fmt: skip
            return
        self.table(["version", "variant", "items", "$/1k items", "original",
                    "original $/1k items"], [
            f"<tr><td>{html.escape(v.model)}</td><td>{v.variant}</td>"
            + self.num(f"variant.{v.model}.items", v.items, f"{v.items:,}")
            + self.num(f"variant.{v.model}.usd_per_1k_items", v.usd_per_1k_items)
            + f"<td>{html.escape(v.original or '-')}</td>"
            + self.num(f"variant.{v.model}.original_usd_per_1k_items",
                       v.original_usd_per_1k_items) + "</tr>"
            for v in levers.variants])  # fmt: skip

    def week(self, this: Report, last: Report) -> None:
        self.add(f"<h2>Week over week</h2><p class=\"muted\">The 7 days to {_when(this.until)} "
                 "against the 7 days before.</p>")  # fmt: skip
        rows = []
        for label, key, value_now, value_then in (
            ("requests", "requests", this.total.requests, last.total.requests),
            ("billed", "billed_usd", this.billed_usd, last.billed_usd),
            ("allocated", "allocated_usd", this.allocated_usd, last.allocated_usd),
            ("idle", "idle_usd", this.idle_usd, last.idle_usd),
            ("$ per 1k requests", "usd_per_1k", this.total.usd_per_1k, last.total.usd_per_1k),
        ):
            text = (lambda v: f"{v:,}") if key == "requests" else _usd
            change = (value_now - value_then) / value_then if value_then else None
            arrow = "" if change is None else ' class="up"' if change > 0 else ' class="down"'
            rows.append(
                f"<tr><td>{label}</td>"
                + self.num(f"week.this.{key}", value_now, text(value_now))
                + self.num(f"week.last.{key}", value_then, text(value_then))
                + (f'<td{arrow} data-field="week.change.{key}" data-value="{change!r}">'
                   f"{100 * change:+.1f}%</td>" if change is not None
                   else '<td class="muted">no traffic before</td>')
                + "</tr>"
            )  # fmt: skip
        self.table(["", "this week", "the week before", "change"], rows)

    def html(self) -> str:
        stamp = datetime.fromtimestamp(time.time()).isoformat(sep=" ", timespec="seconds")
        body = "\n".join(self.parts)
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>frugal report</title><style>{CSS}</style></head><body>\n{body}\n"
            f'<p class="muted">Made by frugal report --html at {stamp}.</p></body></html>\n'
        )


__all__ = ["render_html_report", "write_html_report"]
