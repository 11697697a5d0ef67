"""``frugal simulate``: price autoscaling policies on a traffic trace before they run, and
``frugal simulate trace``: make such a trace (docs/autoscaling.md).

Thin: options are parsed here; ``frugal.scale`` reads, runs and reports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

_POSITIVE = click.FloatRange(min=0, min_open=True)


def _endpoint(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for raw in value or ("default",):
        name, _, weight = raw.partition(":")
        try:
            share = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"{raw!r}: NAME or NAME:WEIGHT, e.g. digits:0.7") from None
        if not name or share <= 0:
            raise click.BadParameter(f"{raw!r}: NAME or NAME:WEIGHT with a weight > 0")
        out.append((name, share))
    return out


@click.group(invoke_without_command=True)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(path_type=Path),
    help="Arrivals: .csv (t_s,endpoint,key) or .jsonl; make one with `frugal simulate trace`.",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(path_type=Path),
    help="A `frugal profile --http` JSON (end-to-end: the server's own time counts).",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="conservative | balanced | aggressive | custom | config (the model's "
    "autoscaling: in --config). Repeat to compare. Default: config's, else "
    "balanced.",
)
@click.option(
    "--fixed",
    multiple=True,
    type=click.IntRange(min=1),
    help="Also simulate N replicas that never scale (the baseline). Repeatable.",
)
@click.option(
    "--instance",
    help="Catalog instance type the replicas run on, e.g. c7i.large "
    "(default: --config's instance).",
)
@click.option(
    "--replica-vcpus",
    type=_POSITIVE,
    help="vCPUs of the instance one replica takes, for its share of the price "
    "[default: 1: a frugal worker process keeps one core busy].",
)
@click.option(
    "--slo-ms",
    type=_POSITIVE,
    default=100.0,
    show_default=True,
    help="p99 latency objective; dropped requests count as over it.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="frugal.yaml: batching, cache TTLs, instance and autoscaling of the model.",
)
@click.option("--model", help="Which model of --config (default: the profile's by sha256).")
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    help="Default: the config's batching, else the profile's.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=1),
    help="Requests a replica queues before it drops (default: config's, else 1024).",
)
@click.option(
    "--timeout-ms",
    type=_POSITIVE,
    help="A request waiting longer is dropped (default: config's, else 10000).",
)
@click.option(
    "--cache-ttl-s",
    type=click.FloatRange(min=0),
    help="TTL of the response cache on every endpoint; 0 turns it off (default: "
    "each endpoint's cache in --config, else off).",
)
@click.option(
    "--startup-s",
    type=click.FloatRange(min=0),
    help="Seconds from asking for a replica to its first answer (default: the "
    "profile's measured model_load_s).",
)
@click.option(
    "--min-replicas",
    type=click.IntRange(min=0),
    help="Override every policy's minimum; 0 scales to zero.",
)
@click.option("--max-replicas", type=click.IntRange(min=1), help="Override every policy's maximum.")
@click.option(
    "--tick-s",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    help="How often the autoscaler decides.",
)
@click.option(
    "--window-s",
    type=_POSITIVE,
    default=10.0,
    show_default=True,
    help="The past over which it reads utilization.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path),
    help="Write every figure, and the time series, as JSON here.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    help="PNG of load, replicas and p99 latency over time per fleet (needs the `plot` extra).",
)
@click.pass_context
def simulate(
    ctx: click.Context,
    trace_path: Path | None,
    profile_path: Path | None,
    policies: tuple[str, ...],
    fixed: tuple[int, ...],
    instance: str | None,
    replica_vcpus: float | None,
    slo_ms: float,
    config_path: Path | None,
    model: str | None,
    max_batch_size: int | None,
    max_queue: int | None,
    timeout_ms: float | None,
    cache_ttl_s: float | None,
    startup_s: float | None,
    min_replicas: int | None,
    max_replicas: int | None,
    tick_s: float,
    window_s: float,
    json_path: Path | None,
    plot_path: Path | None,
) -> None:
    """Price autoscaling policies on a traffic trace before paying for them.

    A discrete-event simulation: each arrival of --trace goes through the response cache
    (a key seen within the TTL is a hit), then to a replica's batcher, timed by the measured
    --profile; replicas start in the profile's model load time (a start from zero is a cold
    start, priced on its own), and each --policy adds and removes them with its delays and
    cooldown on true utilization (model + server time). --fixed N is the baseline that never
    scales. Prints per fleet: $ total and per 1k requests, replica-hours, utilization, p50/p99,
    % over the SLO, drops, scale events and cold starts. Deterministic: the same inputs give
    the same figures.

    \b
      frugal simulate trace --shape diurnal --rate 50 --duration 3600 --seed 1 -o t.csv
      frugal simulate --trace t.csv --profile digits.json --policy balanced \\
          --policy aggressive --fixed 2 --instance c7i.large --slo-ms 100 --plot sim.png
    """
    if ctx.invoked_subcommand is not None:
        return
    for flag, value in (("--trace", trace_path), ("--profile", profile_path)):
        if value is None:
            raise click.UsageError(
                f"Missing option '{flag}' (or run `frugal simulate trace` to make a trace)."
            )
    assert trace_path is not None and profile_path is not None
    if plot_path is not None:
        from frugal.plots import pyplot

        pyplot()  # fail before the runs when matplotlib is missing
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from frugal.scale.simulate_report import plot, print_results, to_json, write_json
    from frugal.scale.simulate_run import Request, prepare, run

    request = Request(
        trace=trace_path,
        profile=profile_path,
        policies=policies,
        fixed=fixed,
        instance=instance,
        replica_vcpus=replica_vcpus,
        slo_ms=slo_ms,
        config=config_path,
        model=model,
        max_batch_size=max_batch_size,
        max_queue=max_queue,
        timeout_ms=timeout_ms,
        cache_ttl_s=cache_ttl_s,
        startup_s=startup_s,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        tick_s=tick_s,
        window_s=window_s,
    )
    prepared = prepare(request)
    console = Console(width=None if sys.stdout.isatty() else 160)
    err = Console(stderr=True)
    total = len(prepared.trace)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        tasks = {
            f.label: bar.add_task(f"simulating {f.label}", total=total) for f in prepared.fleets
        }
        results = run(prepared, lambda fleet, n: bar.update(tasks[fleet.label], completed=n))
    print_results(prepared, results, console)
    if json_path is not None:
        write_json(json_path, to_json(prepared, results))
        console.print(f"wrote {json_path}")
    if plot_path is not None:
        plot(plot_path, results)
        console.print(f"wrote {plot_path}")


@simulate.command("trace")
@click.option(
    "--shape",
    type=click.Choice(["steady", "diurnal", "spiky", "ramp"]),
    default="steady",
    show_default=True,
    help="steady; diurnal (a day in --duration: low at the ends, peak mid-way); "
    "spiky (bursts of 5x on a base); ramp (0.2x to 1.8x).",
)
@click.option(
    "--rate",
    type=_POSITIVE,
    required=True,
    help="Mean requests/s over the whole trace (every shape keeps it).",
)
@click.option("--duration", "duration_s", type=_POSITIVE, required=True, help="Seconds.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The same seed gives the same trace.",
)
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    callback=_endpoint,
    help="NAME or NAME:WEIGHT; repeat to split arrivals [default: default].",
)
@click.option(
    "--distinct-keys",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Cache keys drawn Zipf over this many values (0: no keys, every request "
    "distinct, no cache hit).",
)
@click.option(
    "--zipf",
    "zipf_s",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    help="Zipf exponent of key popularity: higher, fewer keys take more requests.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write it: .csv or .jsonl.",
)
def trace(
    shape: str,
    rate: float,
    duration_s: float,
    seed: int,
    endpoints: list[tuple[str, float]],
    distinct_keys: int,
    zipf_s: float,
    out: Path,
) -> None:
    """Write a synthetic trace: Poisson arrivals whose rate follows --shape, mean --rate."""
    from frugal.scale.traces import SHAPES, generate, write_trace

    made = generate(
        next(s for s in SHAPES if s == shape),
        rate=rate,
        duration_s=duration_s,
        seed=seed,
        endpoints=endpoints,
        distinct_keys=distinct_keys,
        zipf_s=zipf_s,
    )
    write_trace(made, out)
    click.echo(
        f"wrote {out}: {len(made):,} arrivals over {made.duration_s:,.0f} s "
        f"({shape}, mean {len(made) / duration_s:,.1f} req/s)"
    )


__all__ = ["simulate"]
