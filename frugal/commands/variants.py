"""``frugal quantize | prune``: cheaper variants of a model, measured against it
(docs/quantize.md, docs/prune.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from frugal.commands.exits import EXIT_VERDICT
from frugal.commands.profile import DEVICE
from frugal.errors import FrugalError

_VALIDATION_DATA = click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Validation items (.csv, .jsonl, .npz); labels give accuracy, else cosine/agreement.",
)


def _variant_measuring(command: Any) -> Any:
    """The options quantize and prune share: where variants go, and how they are timed."""
    options = [
        click.option("--out-dir", type=click.Path(path_type=Path), help="Default: beside MODEL."),
        DEVICE,
        click.option("--model", "model_name",
                     help="Which model of a frugal.yaml (default: the first)."),
        click.option("--threads", type=click.IntRange(1, 256),
                     help="Intra-op threads (bare file: 1)."),
        click.option("--batch-size", type=click.IntRange(2), default=32, show_default=True,
                     help="The larger batch timed besides batch 1."),
        click.option("--min-repeats", type=click.IntRange(1), default=20, show_default=True),
        click.option("--min-seconds", type=click.FloatRange(0), default=0.3, show_default=True),
    ]  # fmt: skip
    for option in reversed(options):  # decorators apply bottom-up; keep --help's order
        command = option(command)
    return command


def _precisions(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    names = [v.strip().lower() for item in value for v in item.split(",") if v.strip()]
    unknown = [n for n in names if n not in ("int8", "fp16", "bf16")]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r}: choose int8, fp16 or bf16")
    return list(dict.fromkeys(names)) or ["int8"]


@click.command()
@click.argument("target", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--to",
    "precisions",
    multiple=True,
    callback=_precisions,
    help="int8, fp16 or bf16 (TorchScript only); repeat or comma-separate. Default: int8.",
)
@click.option(
    "--method",
    type=click.Choice(["dynamic", "static"]),
    default="dynamic",
    show_default=True,
    help="int8: weights only, activations per batch (dynamic); or calibrated on --data (static).",
)
@_VALIDATION_DATA
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    help="Exit 1 and keep nothing if a variant loses more (accuracy fraction, or 1 - cosine).",
)
@_variant_measuring
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="Also write the measurements as JSON (only when every variant passes).",
)
@click.pass_context
def quantize(
    ctx: click.Context,
    target: Path,
    precisions: list[str],
    method: str,
    data: Path | None,
    max_drop: float | None,
    out_dir: Path | None,
    device: str | None,
    model_name: str | None,
    threads: int | None,
    batch_size: int,
    min_repeats: int,
    min_seconds: float,
    report_path: Path | None,
) -> None:
    """Write int8/fp16/bf16 variants of an ONNX or TorchScript MODEL and measure each vs fp32.

    Size, p50 and items/s at batch 1 and --batch-size, and quality on --data. With --max-drop,
    a variant that loses more makes the command exit 1 and write nothing.
    """
    from frugal.optimize import resolve_target
    from frugal.optimize.quantize import quantize_model
    from frugal.optimize.quantize_output import print_quantize
    from frugal.optimize.variants import Timing

    resolved = resolve_target(target, model=model_name, threads=threads, device=device)
    timing = Timing(batch_size=batch_size, min_repeats=min_repeats, min_seconds=min_seconds)
    result = quantize_model(
        resolved,
        precisions,
        method=method,
        data=data,
        max_drop=max_drop,
        out_dir=out_dir,
        timing=timing,
    )
    print_quantize(result)
    over = [f"{v.name} ({v.quality.drop:.4f})" for v in result.over_max_drop if v.quality]
    _stop_if_over_max_drop(ctx, over, max_drop)
    for variant in result.variants:
        if variant.path is not None:
            click.echo(f"wrote {variant.path}  sha256 {variant.sha256}")
            if variant.options:
                click.echo(f"  runtime options it needs: {json.dumps(variant.options)}")
    _write_report(report_path, result.to_dict())


@click.command()
@click.argument("target", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--sparsity",
    default="0.3,0.5,0.7",
    show_default=True,
    help="Comma list of shares of weights to zero, each strictly between 0 and 1.",
)
@click.option(
    "--structured",
    is_flag=True,
    help="Zero whole output rows (L2 norm, ln_structured dim=0) instead of single weights.",
)
@_VALIDATION_DATA
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    help="Exit 1 and keep nothing if a level loses more (accuracy fraction, or 1 - cosine).",
)
@_variant_measuring
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path),
    help="Also write the measurements as JSON (only when every level passes).",
)
@click.pass_context
def prune(
    ctx: click.Context,
    target: Path,
    sparsity: str,
    structured: bool,
    data: Path | None,
    max_drop: float | None,
    out_dir: Path | None,
    device: str | None,
    model_name: str | None,
    threads: int | None,
    batch_size: int,
    min_repeats: int,
    min_seconds: float,
    report_path: Path | None,
) -> None:
    """Write magnitude-pruned copies of a TorchScript MODEL and measure each vs the original.

    Sparsity counted from the saved weights, size and gzip size, p50 and items/s, and quality
    on --data. --structured also shrinks a plain Sequential MLP. With --max-drop, a level that
    loses more makes the command exit 1 and write nothing.
    """
    from frugal.optimize import resolve_target
    from frugal.optimize.prune import parse_sparsity, prune_model
    from frugal.optimize.prune_output import print_prune
    from frugal.optimize.variants import Timing

    amounts = parse_sparsity(sparsity)
    resolved = resolve_target(target, model=model_name, threads=threads, device=device)
    timing = Timing(batch_size=batch_size, min_repeats=min_repeats, min_seconds=min_seconds)
    result = prune_model(resolved, amounts, structured=structured, data=data,
                         max_drop=max_drop, out_dir=out_dir, timing=timing)  # fmt: skip
    print_prune(result)
    over = [f"{lv.name} ({lv.variant.quality.drop:.4f})" for lv in result.over_max_drop
            if lv.variant.quality]  # fmt: skip
    _stop_if_over_max_drop(ctx, over, max_drop)
    for level in result.levels:
        click.echo(f"wrote {level.variant.path}  sha256 {level.variant.sha256}")
    _write_report(report_path, result.to_dict())


def _stop_if_over_max_drop(ctx: click.Context, over: list[str], max_drop: float | None) -> None:
    """The verdict of quantize and prune: exit 1, naming each variant over --max-drop."""
    if over:
        assert max_drop is not None  # nothing is over without it
        names = ", ".join(over)
        click.secho(f"over --max-drop {max_drop:g}: {names}; nothing written", fg="red", err=True)
        ctx.exit(EXIT_VERDICT)


def _write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:
        return
    try:
        path.write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise FrugalError(f"{path}: cannot write the report: {exc}") from None
    click.echo(f"wrote {path}")


__all__ = ["prune", "quantize"]
