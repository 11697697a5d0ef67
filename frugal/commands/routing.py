"""``frugal calibrate``: choose a cascade's gate thresholds from labeled data (docs/routing.md).

Thin: parses options and calls ``frugal.optimize.tier_runs.calibrate`` (measure every tier, then
``frugal.routing.calibrate`` chooses the thresholds); numpy and the runtimes load inside.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from frugal.commands.exits import EXIT_VERDICT
from frugal.errors import FrugalError, InvalidInput


@click.command()
@click.argument("config", type=click.Path(path_type=Path), default="frugal.yaml")
@click.option("--endpoint", required=True, help="The cascade endpoint whose gates to calibrate.")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Labeled items: .csv (label column), .jsonl (input, label) or .npz (X, y); for a "
    'cascade of upstream LLMs, .jsonl of {"prompt" or "messages", "reference"}.',
)
@click.option(
    "--target-accuracy",
    type=click.FloatRange(0, min_open=True),
    help="Absolute accuracy to keep (0..1), instead of --max-drop.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    default=0.005,
    show_default=True,
    help="Accuracy (0.01 = 1 point) the cascade may lose against the last tier alone.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.95,
    show_default=True,
    help="How sure the choice must be that the cascade keeps the target on new items: an "
    "exact binomial bound, tested from the strictest thresholds (docs/routing.md#confidence). "
    "Fewer items give a more careful choice. 0: the calibration items' point estimate alone.",
)
@click.option(
    "--grader",
    default="exact",
    show_default=True,
    help="Cascades of upstream LLMs: how an answer is judged against the row's reference: exact "
    "(trimmed, case-folded), regex (the reference is a pattern the answer must match), or "
    "module:function(answer, reference, row) -> bool.",
)
@click.option("--write", is_flag=True, help="Write the chosen thresholds into CONFIG in place.")
@click.option(
    "--plot",
    type=click.Path(path_type=Path),
    help="Also draw accuracy vs $ per 1k as a PNG here (needs the plot extra: "
    "pip install 'frugal[plot]'). Default: no plot.",
)
@click.option(
    "--holdout",
    type=click.FloatRange(0, 0.9),
    default=0.5,
    show_default=True,
    help="Share of the items held out to check the chosen thresholds (0: none).",
)
@click.option(
    "--arrival-batch",
    type=click.IntRange(1),
    help="Price each tier at the batch it will see when the first tier's batches hold N items "
    "(`frugal report`'s mean batch): tier k at N x the share of items reaching it, from its busy "
    "time profiled per batch size. Default: every tier at full batches.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--out", type=click.Path(path_type=Path), help="Write every number as JSON here.")
@click.pass_context
def calibrate(
    ctx: click.Context,
    config: Path,
    endpoint: str,
    data: Path,
    target_accuracy: float | None,
    max_drop: float,
    confidence: float,
    grader: str,
    write: bool,
    plot: Path | None,
    holdout: float,
    arrival_batch: int | None,
    seed: int,
    out: Path | None,
) -> None:
    """Choose the cheapest gate thresholds of a cascade that keep its accuracy.

    Every tier of ENDPOINT's cascade runs once on every item of --data (through frugal's
    runtimes, priced like the server prices it); the thresholds are swept on a calibration part
    and checked on a held-out part. Exit 1 when no thresholds meet the target. Nothing is
    drawn unless --plot is given.
    """
    from frugal.optimize.tier_runs import calibrate as run
    from frugal.routing.calibrate import resolve_cascade
    from frugal.routing.calibrate_output import (
        gate_snippet,
        plot_calibration,
        print_calibration,
        write_thresholds,
    )

    if not data.is_file():
        raise InvalidInput(f"{data}: file not found", hint="--data names a labeled data file")
    if plot is not None:
        from frugal.plots import pyplot

        pyplot()  # no matplotlib: say so now, not after the measuring run
    cascade = resolve_cascade(config, endpoint)
    result = run(cascade, data, target_accuracy=target_accuracy, max_drop=max_drop,
                 holdout=holdout, seed=seed, arrival_batch=arrival_batch,
                 confidence=confidence, grader=grader)  # fmt: skip
    print_calibration(result)
    if out is not None:  # before the plot: a plot that cannot be written loses no numbers
        try:
            out.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise FrugalError(f"{out}: cannot write: {exc.strerror}") from None
        click.echo(f"wrote {out}")
    if plot is not None:
        plot_calibration(result, plot)
        click.echo(f"wrote {plot}")
    if result.chosen is None:
        ctx.exit(EXIT_VERDICT)
    if write:
        write_thresholds(config, endpoint, result.chosen.thresholds)
        click.echo(f"wrote the threshold(s) into {config}")
    else:
        click.echo(f"paste into endpoint {endpoint} of {config} (or run with --write):")
        click.echo(gate_snippet(result))


__all__ = ["calibrate"]
