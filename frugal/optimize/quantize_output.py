"""How ``frugal quantize`` shows its result: one row per variant against fp32 and the rule of
thumb (fp16 halves the file, int8 quarters it, for about one point of accuracy)."""

from __future__ import annotations

from typing import Any

from frugal.optimize.quantize import EXPECTED_DROP, EXPECTED_SIZE, QuantizeReport
from frugal.optimize.variants import Variant


def print_quantize(report: QuantizeReport, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough for the table on one line
            console = Console(width=120)
    base = report.baseline
    big = _big_batch(base)
    model = report.model
    table = Table(
        title=f"quantize {model['name']} ({model['runtime']}) on {report.hardware['device']}, "
        f"{report.threads} thread(s), quality on {report.items} items"
        + (f" of {report.data}" if report.data else " (made up: agreement only)")
    )
    columns = ["variant", "size", "p50 b1", f"p50 b{big}", f"items/s b{big}", "quality", "drop",
               "vs rule of thumb"]  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in (columns[0], columns[-1]) else "right")
    table.add_row(*_row(base, base, big, report.max_drop), end_section=True)
    for variant in report.variants:
        table.add_row(*_row(variant, base, big, report.max_drop))
    console.print(table)
    for variant in report.variants:
        if variant.skipped:
            console.print(f"{variant.name}: skipped: {variant.skipped}")
        elif variant.note:
            console.print(f"{variant.name}: {variant.note}")
    drops = {"accuracy": "accuracy lost (0.01 = 1 point)", "agreement": "1 - agreement with fp32",
             "cosine": "1 - mean cosine to fp32 (min cosine in brackets)"}  # fmt: skip
    if base.quality is not None:
        console.print(
            f"p50 in ms; size and items/s also as x of fp32; drop: {drops[base.quality.metric]}; "
            f"rule of thumb: fp16 1/2 size, int8 1/4 size, ~1 point of accuracy"
        )


def _row(v: Variant, base: Variant, big: int, max_drop: float | None) -> list[str]:
    if v.skipped:
        return [v.name, "-", "-", "-", "-", "-", "-", "skipped"]
    b1, bb = _point(v, 1), _point(v, big)
    base_bb = _point(base, big)
    size = f"{_mb(v.size_bytes)}"
    if v is not base and v.size_bytes and base.size_bytes:
        size += f" {v.size_bytes / base.size_bytes:.2f}x"
    speed = "-" if bb is None else f"{bb['items_per_s']:,.0f}"
    if v is not base and bb is not None and base_bb is not None:
        speed += f" {bb['items_per_s'] / base_bb['items_per_s']:.2f}x"
    quality = v.quality.describe() if v.quality else "-"
    drop = "-"
    if v is not base and v.quality is not None:
        over = max_drop is not None and v.quality.drop > max_drop
        drop = f"{v.quality.drop:.4f}" + (" OVER" if over else "")
    return [
        v.name,
        size,
        "-" if b1 is None else f"{b1['p50_ms']:.3f}",
        "-" if bb is None else f"{bb['p50_ms']:.3f}",
        speed,
        quality,
        drop,
        _rule(v, base),
    ]


def _rule(v: Variant, base: Variant) -> str:
    if v is base or v.quality is None:
        return ""
    expected = EXPECTED_SIZE.get(v.name.split("-")[0])
    if expected is None or not (v.size_bytes and base.size_bytes):
        return ""
    ratio = v.size_bytes / base.size_bytes
    size_says = f"1/{round(1 / expected)} size: {ratio:.2f}x"
    if v.quality.metric == "accuracy":
        return f"{size_says}; ~{100 * EXPECTED_DROP:g} pt: {100 * v.quality.drop:.2f} pt"
    return f"{size_says}; ~{EXPECTED_DROP:g}: {v.quality.drop:.4f}"


def _point(v: Variant, batch: int) -> dict[str, Any] | None:
    if v.profile is None:
        return None
    p = v.profile.point(batch)
    return None if p is None else {"p50_ms": p.p50_ms, "items_per_s": p.items_per_s}


def _big_batch(base: Variant) -> int:
    assert base.profile is not None
    return max(p.batch_size for p in base.profile.points)


def _mb(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


__all__ = ["print_quantize"]
