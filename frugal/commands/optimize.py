"""``frugal profile | quantize | prune | plan | check``: the optimization toolkit's verbs
(docs/profile.md, docs/quantize.md, docs/prune.md, docs/plan.md, docs/cost-gate.md).

Thin: each verb parses its options and calls ``frugal.optimize``; heavy imports stay inside.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from frugal.commands.exits import EXIT_VERDICT
from frugal.errors import FrugalError


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of whole numbers, e.g. 1,8,32") from None
    if not sizes or sizes[0] < 1:
        raise click.BadParameter("batch sizes are whole numbers >= 1")
    return sizes


_DEVICE = click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    help="Where the model runs (default: cuda when torch sees a GPU, else cpu).",
)


@click.command()
@click.argument("target", metavar="MODEL_OR_CONFIG", type=click.Path(path_type=Path))
@click.option("--model", "model_name", help="Which model of a frugal.yaml (default: the first).")
@click.option(
    "--batch-sizes",
    default="1,2,4,8,16,32,64",
    show_default=True,
    callback=_batch_sizes,
    help="Comma list of batch sizes to measure.",
)
@click.option(
    "--runtime",
    type=click.Choice(["sklearn", "onnx", "torch", "python"]),
    help="Runtime of a bare model file (default: from its suffix).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Sample items: .csv, .jsonl or .npz (default: made up from the inputs).",
)
@click.option(
    "--slo-ms",
    type=click.FloatRange(min=0, min_open=True),
    help="Latency objective (ms): caps the suggested batch by its p99.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    help="Intra-op threads of the one worker measured (bare file: 1).",
)
@_DEVICE
@click.option("--warmup", type=click.IntRange(0), default=3, show_default=True)
@click.option("--min-repeats", type=click.IntRange(1), default=20, show_default=True)
@click.option(
    "--min-seconds",
    type=click.FloatRange(0),
    default=0.5,
    show_default=True,
    help="Each batch size repeats until both --min-repeats and this are reached.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default="profile.json",
    show_default=True,
    help="The profile JSON (read by frugal plan and check).",
)
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw items/s and p99 (PNG).")
def profile(
    target: Path,
    model_name: str | None,
    batch_sizes: list[int],
    runtime: str | None,
    data: Path | None,
    slo_ms: float | None,
    threads: int | None,
    device: str | None,
    warmup: int,
    min_repeats: int,
    min_seconds: float,
    out: Path,
    plot: Path | None,
) -> None:
    """Measure p50/p99 and items/s of one worker per batch size; suggest max_batch_size.

    MODEL_OR_CONFIG is a frugal.yaml (--model picks the model) or a model file (.onnx,
    .joblib/.pkl, .pt/.pt2). The model loads through frugal's runtimes, as the server loads it.
    """
    from frugal.optimize import limit_threads, load_target, profile_model, resolve_target
    from frugal.optimize.profile_output import plot_profile, print_profile
    from frugal.optimize.target import sample_items

    resolved = resolve_target(
        target, model=model_name, runtime=runtime, threads=threads, device=device
    )
    model = load_target(resolved)
    items, _ = sample_items(resolved, model, data)
    with limit_threads(resolved.threads):
        result = profile_model(
            model,
            items,
            batch_sizes,
            warmup=warmup,
            min_repeats=min_repeats,
            min_seconds=min_seconds,
            device=resolved.device,
            threads=resolved.threads,
            slo_ms=slo_ms,
            record=resolved.record(),
        )
    print_profile(result)
    try:
        result.save(out)
    except OSError as exc:
        raise FrugalError(f"{out}: cannot write the profile: {exc}") from None
    click.echo(f"wrote {out}")
    if plot is not None:
        plot_profile(result, plot)
        click.echo(f"wrote {plot}")


_VALIDATION_DATA = click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Validation items (.csv, .jsonl, .npz); labels give accuracy, else cosine/agreement.",
)


def _variant_measuring(command: Any) -> Any:
    """The options quantize and prune share: where variants go, and how they are timed."""
    options = [
        click.option("--out-dir", type=click.Path(path_type=Path), help="Default: beside MODEL."),
        _DEVICE,
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


_POSITIVE = click.FloatRange(min=0, min_open=True)
_HEADROOM = click.FloatRange(0, 1, min_open=True)


@click.command()
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A `frugal profile` JSON; repeat for more hardware (a cpu and a gpu:T4 profile...).",
)
@click.option("--qps", type=_POSITIVE, required=True, help="Requests per second to serve.")
@click.option("--slo-ms", type=_POSITIVE, required=True, help="p99 latency objective, in ms.")
@click.option("--budget-usd-month", type=_POSITIVE, help="Refuse choices that cost more.")
@click.option(
    "--headroom",
    type=_HEADROOM,
    default=0.7,
    show_default=True,
    help="Most a replica may be busy; replicas = ceil(qps / (capacity x headroom)).",
)
@click.option(
    "--max-wait-ms",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="batching.max_wait_ms the plan assumes (part of the latency bound); with "
    "batching.linger_ms set, give the larger of the two.",
)
@click.option(
    "--provider",
    type=click.Choice(["aws", "gcp", "azure", "all"]),
    default="all",
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="frugal.yaml whose `instance:` price and slots override the catalog.",
)
@click.option(
    "--catalog",
    "catalog_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Price catalog YAML to use instead of the shipped ones (repeatable).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the plan as JSON here.")
@click.pass_context
def plan(
    ctx: click.Context,
    profile_paths: tuple[Path, ...],
    qps: float,
    slo_ms: float,
    budget_usd_month: float | None,
    headroom: float,
    max_wait_ms: float,
    provider: str,
    config_path: Path | None,
    catalog_paths: tuple[Path, ...],
    out: Path | None,
) -> None:
    """The cheapest instance type that serves --qps within --slo-ms, from measured profiles.

    Only hardware with a profile is priced; other types are listed with the `frugal profile`
    command that would measure them. Exit 1 when nothing meets the SLO (and the budget).
    """
    from frugal.optimize.plan import PlanInputs
    from frugal.optimize.plan_report import run_plan

    inputs = PlanInputs(qps=qps, slo_ms=slo_ms, headroom=headroom, provider=provider,
                        budget_usd_month=budget_usd_month, max_wait_ms=max_wait_ms)  # fmt: skip
    result = run_plan(profile_paths=profile_paths, inputs=inputs, config_path=config_path,
                      catalog_paths=catalog_paths, out=out)  # fmt: skip
    if result.choice is None:
        ctx.exit(EXIT_VERDICT)


@click.command()
@click.option("--baseline", "baseline_path", type=click.Path(path_type=Path),
              default="cost-baseline.json", show_default=True)  # fmt: skip
@click.option("--config", "config_path", type=click.Path(path_type=Path), default="frugal.yaml",
              show_default=True)  # fmt: skip
@click.option(
    "--profile",
    "profile_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Profile JSON (repeatable). Default: profiles/*.json next to --config.",
)
@click.option("--qps", type=_POSITIVE, help="Requests/s per endpoint (default: the baseline's).")
@click.option("--headroom", type=_HEADROOM, help="Default: the baseline's (0.7 for a new one).")
@click.option(
    "--max-increase",
    default="10%",
    show_default=True,
    help="Largest allowed rise of an endpoint's $ per 1k: 10% or 0.1.",
)
@click.option("--update", is_flag=True, help="Write the baseline from this run and exit 0.")
@click.pass_context
def check(
    ctx: click.Context,
    baseline_path: Path,
    config_path: Path,
    profile_paths: tuple[Path, ...],
    qps: float | None,
    headroom: float | None,
    max_increase: str,
    update: bool,
) -> None:
    """CI cost gate: exit 1 when an endpoint's projected $ per 1k requests rose too much.

    Prices each endpoint from the config, its models' profiles (matched by sha256) and the
    baseline's qps; needs no model runtime. See docs/cost-gate.md.
    """
    from frugal.optimize.check import parse_increase
    from frugal.optimize.check_report import run_check

    passed = run_check(baseline_path=baseline_path, config_path=config_path,
                       profile_paths=profile_paths, qps=qps, headroom=headroom,
                       max_increase=parse_increase(max_increase), update=update)  # fmt: skip
    if not passed:
        ctx.exit(EXIT_VERDICT)


__all__ = ["check", "plan", "profile", "prune", "quantize"]
