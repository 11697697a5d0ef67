"""What ``frugal demo`` prints: a row per run, then a line per lever against the naive baseline.

Kept apart from the runs (``frugal/demo.py``) so that the words, which are the demo's point, can
be read in one place: which dollars are compared (billed: the machine's bill over the run),
what each column means, and a lever that costs more or loses accuracy saying so plainly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from frugal.demo import RunResult

COLUMNS = ("requests", "err", "p50 ms", "p99 ms", "req/s", "batch", "hits", "accuracy",
           "$/1k model", "$/1k overhead", "$/1k billed")  # fmt: skip


def results_table(results: Sequence[RunResult], *, connections: int) -> Table:
    """One row per run; everything but latency and accuracy from the run's ledger."""
    requests = results[0].load.requests + results[0].load.errors if results else 0
    table = Table(
        title=f"digits, one image a request, {requests:,} requests a run over {connections} "
        "connections, c7i.large prices"
    )
    table.add_column("run", no_wrap=True)
    for name in COLUMNS:
        table.add_column(name, justify="right")
    for r in results:
        total, report = r.report.total, r.report
        table.add_row(
            r.run.label, f"{r.requests:,}", str(total.errors), f"{r.load.p50_ms:.1f}",
            f"{r.load.p99_ms:.1f}", f"{r.requests / r.load.seconds:,.0f}",
            f"{total.mean_batch_size:.1f}", f"{100 * total.cache_hit_ratio:.0f}%",
            f"{100 * r.accuracy:.1f}%", f"{r.per_1k(report.model_usd):.2e}",
            f"{r.per_1k(report.overhead_usd):.2e}", f"{r.per_1k(report.billed_usd):.2e}",
        )  # fmt: skip
    return table


def print_results(
    console: Console, results: Sequence[RunResult], *, connections: int, workdir: Path
) -> None:
    """The table, what its dollars are, and how to see the same figures with ``frugal report``."""
    console.print(results_table(results, connections=connections))
    _say(console,
         "$/1k model: each batch's busy time x the instance's price / slots, shared by its items; "
         "overhead: the server's own work (HTTP, JSON, routing, ledger), its measured CPU priced "
         "per vCPU-second; billed: the instance's price x the run's measured window, from the "
         "first request sent to the last answer (start-up, warm-up and the idle after it "
         "excluded; idle within it included). p50/p99 are the client's; the rest comes from "
         "each run's ledger over its window (runs.json).")  # fmt: skip
    for r in results:
        lost = r.load.errors - r.report.total.errors
        if lost > 0:
            _say(console, f"{r.run.label}: {lost} requests failed before reaching the server "
                 f"(broken connections or timeouts; see serve-{r.run.name}.log)")  # fmt: skip
    if len(results) > 1:
        r = results[1]
        _say(console, "the same figures from a ledger: frugal report --ledger "
             f"{workdir / f'ledger-{r.run.name}.db'} --since {_iso(r.load.since)} "
             f"--until {_iso(r.load.until)}")  # fmt: skip


def lever_lines(results: Sequence[RunResult], *, distinct_images: int) -> list[str]:
    """A heading, then one line per lever: how many times cheaper (or dearer) than the naive
    baseline in billed $/1k (allocated in parentheses), at what accuracy next to the baseline's."""
    if not results:
        return []
    base = results[0]
    lines = [
        "each lever against the naive baseline (the large model only, batch 1, no cache), in "
        "billed $/1k (allocated = model + overhead in parentheses), "
        f"accuracy on the {distinct_images} distinct traffic images (never trained or "
        "calibrated on):"
    ]
    for r in results[1:]:
        billed = _times(base.per_1k(base.report.billed_usd), r.per_1k(r.report.billed_usd))
        allocated = _times(base.per_1k(base.report.allocated_usd), r.per_1k(r.report.allocated_usd))
        lines.append(
            f"  {r.run.lever}: {billed} than the naive baseline (billed $/1k; allocated "
            f"{allocated}) at {100 * r.accuracy:.1f}% accuracy (baseline "
            f"{100 * base.accuracy:.1f}%){_accuracy_change(r.accuracy, base.accuracy)}"
        )
    lines.extend(_cascade_note(results))
    return lines


def _times(base_usd: float, usd: float) -> str:
    """``3.1x cheaper`` or ``1.25x more expensive``: how ``usd`` compares with ``base_usd``."""
    if not (base_usd > 0 and usd > 0):
        return "not comparable (no cost recorded)"
    ratio = base_usd / usd
    return f"{_x(ratio)} cheaper" if ratio >= 1 else f"{_x(1 / ratio)} more expensive"


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 2 else f"{ratio:.1f}x"


def _accuracy_change(accuracy: float, base: float) -> str:
    points = 100 * (accuracy - base)
    if points <= -0.05:
        return f": {-points:.1f} points less accurate"
    if points >= 0.05:
        return f": {points:.1f} points more accurate"
    return ""


def _cascade_note(results: Sequence[RunResult]) -> list[str]:
    """Why a cascade can cost more than batching its large model alone, when it does here."""
    by_name = {r.run.name: r for r in results}
    cascade, batching = by_name.get("cascade"), by_name.get("batching")
    if cascade is None or batching is None:
        return []
    if cascade.per_1k(cascade.report.billed_usd) <= batching.per_1k(batching.report.billed_usd):
        return []
    return [
        "the cascade costs more than batching the large model alone: the large model is cheap "
        "per item in full batches, and the escalated items reach it a few at a time "
        "(docs/routing.md)"
    ]


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(timespec="microseconds")


__all__ = ["lever_lines", "print_results", "results_table"]
