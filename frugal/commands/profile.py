"""``frugal profile``: latency and items/s of one worker per batch size (docs/profile.md).

Thin: it parses options and calls ``frugal.optimize``; heavy imports stay inside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from frugal.errors import FrugalError, InvalidInput


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of whole numbers, e.g. 1,8,32") from None
    if not sizes or sizes[0] < 1:
        raise click.BadParameter("batch sizes are whole numbers >= 1")
    return sizes


def _concurrency(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        levels = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of whole numbers, e.g. 1,4,16,64") from None
    if not levels or levels[0] < 1:
        raise click.BadParameter("concurrency levels are whole numbers >= 1")
    if levels[-1] > 1024:
        raise click.BadParameter("at most 1024 concurrent connections")
    return levels


def _rates(ctx: click.Context, param: click.Parameter, value: str | None) -> list[float]:
    if not value:
        return []
    try:
        rates = sorted({float(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise click.BadParameter("a comma list of requests per second, e.g. 50,100,200") from None
    if not rates or rates[0] <= 0 or not all(r < 1e6 for r in rates):
        raise click.BadParameter("rates are requests per second, > 0 and < 1000000")
    return rates


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
@click.option(
    "--http",
    "http",
    is_flag=True,
    help="Also profile end to end: start a real `frugal serve` on the model and drive it over "
    "HTTP at each --concurrency, recording req/s, p50/p99 and the server's CPU per request.",
)
@click.option(
    "--concurrency",
    default="1,4,16,64",
    show_default=True,
    callback=_concurrency,
    help="With --http: requests kept in flight, one level after another.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="With --http: measured seconds per concurrency (after a warm-up of a quarter of it, "
    "at most 1 s).",
)
@click.option(
    "--server-workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="With --http: `frugal serve --workers` of the server driven.",
)
@click.option(
    "--rates",
    default=None,
    callback=_rates,
    help="With --http: also drive the server open loop, Poisson arrivals at each rate "
    "(req/s) for --seconds, recording p50/p99 and CPU per request; `frugal simulate` reads "
    "them for the server's time outside the model (e.g. 50,100,200,400).",
)
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
    http: bool,
    concurrency: list[int],
    seconds: float,
    server_workers: int,
    rates: list[float],
) -> None:
    """Measure p50/p99 and items/s of one worker per batch size; suggest max_batch_size.

    MODEL_OR_CONFIG is a frugal.yaml (--model picks the model) or a model file (.onnx,
    .joblib/.pkl, .pt/.pth/.ts/.pt2). The model loads through frugal's runtimes, as the server
    loads it, and the load time is recorded (a serverless cold start's init time, for `frugal
    plan`).
    With --http the server's own work (HTTP, JSON, batching, ledger) is measured too, which
    `frugal plan` needs to count the server's CPU (docs/profile.md#end-to-end---http).
    """
    import time

    from frugal.optimize import limit_threads, load_target, profile_model, resolve_target
    from frugal.optimize.profile_output import plot_profile, print_profile
    from frugal.optimize.target import sample_items

    resolved = resolve_target(
        target, model=model_name, runtime=runtime, threads=threads, device=device
    )
    started = time.perf_counter()
    model = load_target(resolved)
    load_s = time.perf_counter() - started
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
            model_load_s=load_s,
        )
    if rates and not http:
        raise InvalidInput("--rates drives the server open loop: give --http too", field="--rates")
    if http:
        result = _with_http(
            resolved, model, items, concurrency, seconds, server_workers, result, rates
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


def _with_http(
    resolved: Any,
    model: Any,
    items: Any,
    concurrency: list[int],
    seconds: float,
    workers: int,
    result: Any,
    rates: list[float],
) -> Any:
    """The profile with its end-to-end section, measured on a real `frugal serve`."""
    import dataclasses

    from frugal.config import load_config
    from frugal.optimize.serve_profile import profile_http, run_folder, served_config
    from frugal.optimize.target import CONFIG_SUFFIXES, input_specs

    source = (
        load_config(resolved.source) if resolved.source.suffix.lower() in CONFIG_SUFFIXES else None
    )
    with run_folder() as folder:
        served = served_config(resolved, input_specs(resolved, model), items, folder, source)
        section = profile_http(
            served, concurrency=concurrency, seconds=seconds, workers=workers, rates=rates
        )
    return dataclasses.replace(result, http=section)


__all__ = ["DEVICE", "profile"]
