"""How ``frugal prune`` shows its result: one row per level against the original, and a plain
sentence when the zeros bought no speed (dense kernels multiply them anyway)."""

from __future__ import annotations

from typing import Any

from frugal.optimize.prune import NO_SPEEDUP, Level, PruneReport


def print_prune(report: PruneReport, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough for the table on one line
            console = Console(width=120)
    base = report.baseline
    big = _big_batch(base)
    method = "ln_structured rows" if report.structured else "l1_unstructured"
    table = Table(
        title=f"prune {report.model['name']} ({method}, {len(report.layers)} layer(s)) on "
        f"{report.hardware.get('device', '?')}, {report.threads} thread(s), quality on "
        f"{report.items} items" + (f" of {report.data}" if report.data else " (made up)")
    )
    columns = ["level", "sparsity", "size", "gzip", "p50 b1", f"items/s b{big}", "quality", "drop"]
    for name in columns:
        table.add_column(name, justify="left" if name == "level" else "right")
    table.add_row(*_row(base, base, big, report.max_drop), end_section=True)
    for level in report.levels:
        table.add_row(*_row(level, base, big, report.max_drop))
    console.print(table)
    for level in report.levels:
        if level.variant.note:
            console.print(f"{level.name}: {level.variant.note}")
    slow = report.no_speedup()
    dense = [lv.name for lv in slow if not lv.shrunk]
    if dense:
        console.print(
            f"No speed-up from the zeros: {', '.join(dense)} ran within {100 * NO_SPEEDUP:g}% of "
            f"the original's items/s at batch {big}. Dense kernels multiply zero weights like any "
            "other; the gain is on disk (gzip column)"
            + ("" if report.structured else ", or with sparse kernels frugal does not use")
            + "."
        )
    shrunk_slow = [lv.name for lv in slow if lv.shrunk]
    if shrunk_slow:
        console.print(
            f"{', '.join(shrunk_slow)}: smaller layers, but within {100 * NO_SPEEDUP:g}% of the "
            "original's items/s: at this size the per-call overhead dominates the matmuls."
        )
    console.print(
        "sparsity: share of the pruned layers' original weights that are zero (or removed, for "
        "-shrunk) in the saved file; p50 in ms; drop vs the original"
    )


def _row(lv: Level, base: Level, big: int, max_drop: float | None) -> list[str]:
    v = lv.variant
    b1 = v.profile.point(1) if v.profile else None
    bb = v.profile.point(big) if v.profile else None
    base_bb = base.variant.profile.point(big) if base.variant.profile else None
    size = _kb(v.size_bytes)
    gz = _kb(lv.gzip_bytes)
    if lv is not base and v.size_bytes and base.variant.size_bytes:
        size += f" {v.size_bytes / base.variant.size_bytes:.2f}x"
        gz += f" {lv.gzip_bytes / base.gzip_bytes:.2f}x"
    speed = "-" if bb is None else f"{bb.items_per_s:,.0f}"
    if lv is not base and bb is not None and base_bb is not None:
        speed += f" {bb.items_per_s / base_bb.items_per_s:.2f}x"
    drop = "-"
    if lv is not base and v.quality is not None:
        over = max_drop is not None and v.quality.drop > max_drop
        drop = f"{v.quality.drop:.4f}" + (" OVER" if over else "")
    return [
        lv.name,
        "-" if lv.sparsity is None else f"{100 * lv.sparsity.share:.1f}%",
        size,
        gz,
        "-" if b1 is None else f"{b1.p50_ms:.3f}",
        speed,
        v.quality.describe() if v.quality else "-",
        drop,
    ]


def _big_batch(base: Level) -> int:
    assert base.variant.profile is not None
    return max(p.batch_size for p in base.variant.profile.points)


def _kb(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.2f} MB" if size >= 1_000_000 else f"{size / 1e3:.1f} kB"


__all__ = ["print_prune"]
