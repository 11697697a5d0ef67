"""How ``frugal distill`` shows its report: a rich table of teacher vs student, then the
student's ``models:`` entry and the cascade's calibrated gate."""

from __future__ import annotations

from typing import Any

from frugal.optimize.distill import DistillReport, Side


def print_distill(report: DistillReport, console: Any = None) -> None:
    """Teacher and student side by side: size, accuracy, p50, items/s and $ per 1k."""
    import yaml
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough for the table
            console = Console(width=120)
    inst, hw = report.instance, report.hardware
    table = Table(
        title=f"distill: {report.teacher.name} -> {report.student.name} "
        f"({report.spec.estimator or 'MiniLM head'}, {report.targets_used} labels) "
        f"on {hw['cpu_model']}, "
        f"priced as {inst['type']} (${inst['price_usd_per_hour']:g}/h, {inst['slots']:g} slots)"
    )
    sizes = [p.batch_size for p in report.teacher.profile.points]
    columns = ["model", "size", "accuracy"]
    for b in sizes:
        columns += [f"p50 ms b{b}", f"items/s b{b}", f"$/1k b{b}"]
    for name in columns:
        table.add_column(name, justify="right" if name != "model" else "left")
    for side in (report.teacher, report.student):
        table.add_row(*_row(side, sizes))
    table.add_row(*_ratio_row(report, sizes), style="bold")
    console.print(table)
    console.print(
        f"agreement with the teacher: {100 * report.agreement:.2f}% on {report.holdout_items} "
        f"held-out items (trained on {report.train_items}); the exported ONNX answers as the "
        f"in-memory student on {100 * report.onnx_agreement:.2f}% of them"
    )
    console.print("$/1k: busy time only at full batches, as `frugal plan` prices a profile")
    where = (
        " (path relative to the folder it was written in)" if "path" in report.models_entry else ""
    )
    console.print(f"models: entry for frugal.yaml{where}:")
    console.print(
        yaml.safe_dump([report.models_entry], sort_keys=False).rstrip(),
        markup=False,
        highlight=False,
    )
    _print_calibration(report, console)


def _row(side: Side, sizes: list[int]) -> list[str]:
    row = [side.name, _size(side.size_bytes), _pct(side.accuracy)]
    for b in sizes:
        point = side.profile.point(b)
        assert point is not None
        row += [f"{point.p50_ms:.3f}", f"{point.items_per_s:,.0f}", f"{side.usd_per_1k[b]:.3g}"]
    return row


def _ratio_row(report: DistillReport, sizes: list[int]) -> list[str]:
    t, s = report.teacher, report.student
    size = _ratio(s.size_bytes, t.size_bytes) if t.size_bytes and s.size_bytes else "-"
    row = ["student / teacher", size, ""]
    for b in sizes:
        tp, sp = t.profile.point(b), s.profile.point(b)
        assert tp is not None and sp is not None
        row += [
            _ratio(sp.p50_ms, tp.p50_ms),
            _ratio(sp.items_per_s, tp.items_per_s),
            _ratio(s.usd_per_1k[b], t.usd_per_1k[b]),
        ]
    return row


def _print_calibration(report: DistillReport, console: Any) -> None:
    cal = report.calibration
    where = report.cascade_config
    if cal is None:
        console.print(
            f"wrote {where}: the student as the first tier of a cascade, gate "
            "confidence >= 0.9 (not calibrated: pass --labels to calibrate it)"
        )
        return
    if cal["threshold"] is None:
        console.print(
            f"[yellow]frugal calibrate found no gate keeping accuracy within "
            f"{100 * cal['max_drop']:g} point(s) of the teacher at {cal['confidence']:g} "
            f"confidence on {cal['calibration_items']} items[/yellow]; {where} keeps the "
            "placeholder gate confidence >= 0.9: give more labeled items, then run "
            f"`frugal calibrate {where} --endpoint distilled --data LABELS --write` "
            "(or allow a larger --max-drop)"
        )
        return
    line = (
        f"cascade gate chosen by frugal calibrate: confidence >= {cal['threshold']:g} "
        f"(accuracy {_pct(cal['accuracy'])} vs the teacher alone "
        f"{_pct(cal['teacher_alone_accuracy'])} at ${cal['teacher_alone_usd_per_1k']:.3g} per 1k; "
        f"{100 * cal['escalation_rate']:.1f}% of items escalated, ${cal['usd_per_1k']:.3g} per 1k "
        f"on {cal['calibration_items']} items"
    )
    if cal.get("holdout_accuracy") is not None:
        line += (
            f"; held out: accuracy {_pct(cal['holdout_accuracy'])}, "
            f"{100 * cal['holdout_escalation_rate']:.1f}% escalated"
        )
    console.print(line + f"); written into {where}")


def _ratio(a: float, b: float) -> str:
    """``a / b`` to three significant figures, as ``1/N`` below 1: a student is often 1000x
    cheaper, and ``1/1.66e+03`` reads better than ``0.000602x``."""
    if not b or not a:
        return "-"
    return f"{a / b:.3g}x" if a >= b else f"1/{b / a:.3g}"


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


__all__ = ["print_distill"]
