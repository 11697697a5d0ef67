"""``frugal profile``: latency and items/s of one worker per batch size (docs/profile.md).

Thin: it parses options and calls ``frugal.optimize``; heavy imports stay inside.
"""

from __future__ import annotations

from pathlib import Path

import click

from frugal.errors import FrugalError


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of whole numbers, e.g. 1,8,32") from None
    if not sizes or sizes[0] < 1:
        raise click.BadParameter("batch sizes are whole numbers >= 1")
    return sizes


DEVICE = click.option(
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
@DEVICE
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
    .joblib/.pkl, .pt/.pth/.ts/.pt2). The model loads through frugal's runtimes, as the server
    loads it.
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


__all__ = ["DEVICE", "profile"]
