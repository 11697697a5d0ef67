"""``frugal distill``: train a small student on a large teacher's answers (docs/distill.md).

Thin: parses options, resolves the teacher and calls ``frugal.optimize.distill``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from frugal.errors import FrugalError, InvalidInput

if TYPE_CHECKING:
    from frugal.config import InstanceConfig
    from frugal.optimize import Target

DEFAULT_INSTANCE = "c7i.large"


@click.command()
@click.option(
    "--teacher",
    required=True,
    metavar="MODEL",
    help="A model of --config (name or name:version), or a model file as `frugal "
    "profile` takes it (.joblib/.pkl, .onnx, ...).",
)
@click.option(
    "--student-spec",
    "spec_path",
    required=True,
    type=click.Path(path_type=Path),
    help="YAML: kind (sklearn), estimator + params from the allow-list, targets "
    "(soft|hard), seed. See docs/distill.md.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help='Unlabeled items: .csv (numeric columns), .jsonl ({"input": ...} lines) '
    "or .npz (array X).",
)
@click.option(
    "--labels",
    type=click.Path(path_type=Path),
    help="Labeled holdout, same formats with labels: accuracy of both, and the "
    "cascade gate `frugal calibrate` picks.",
)
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(path_type=Path),
    default="distilled",
    show_default=True,
    help="Where the student .onnx, frugal.yaml (cascade) and distill.json go.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="frugal.yaml whose model --teacher names; its instance prices both.",
)
@click.option(
    "--max-drop",
    type=click.FloatRange(0),
    default=0.005,
    show_default=True,
    help="With --labels: accuracy the cascade may lose against the teacher alone, "
    "as `frugal calibrate --max-drop`.",
)
@click.option("--name", help="The student's model name (default: TEACHER-student).")
@click.option(
    "--holdout",
    type=click.FloatRange(0.05, 0.9),
    default=0.2,
    show_default=True,
    help="Share of --data held out from training to measure agreement on.",
)
@click.option(
    "--instance",
    "instance_type",
    help=f"Catalog instance pricing $ per 1k (default: --config's, else {DEFAULT_INSTANCE}).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(2),
    default=32,
    show_default=True,
    help="The larger batch timed besides batch 1.",
)
@click.option("--min-repeats", type=click.IntRange(1), default=20, show_default=True)
@click.option("--min-seconds", type=click.FloatRange(0), default=0.3, show_default=True)
def distill(
    teacher: str,
    spec_path: Path,
    data: Path,
    labels: Path | None,
    out_dir: Path,
    config_path: Path | None,
    max_drop: float,
    name: str | None,
    holdout: float,
    instance_type: str | None,
    batch_size: int,
    min_repeats: int,
    min_seconds: float,
) -> None:
    """Train a small student on a teacher's answers to unlabeled --data, export it to ONNX.

    Reports agreement with the teacher on held-out items, accuracy on --labels, size, latency
    and $ per 1k of both, and writes a cascade (student first, teacher last) whose gate
    `frugal calibrate` picks when --labels is given.
    """
    from frugal.config import InstanceConfig
    from frugal.optimize.distill import distill as run
    from frugal.optimize.distill_output import print_distill
    from frugal.optimize.distill_spec import load_spec
    from frugal.optimize.variants import Timing

    spec = load_spec(spec_path)
    for flag, path in (("--data", data), ("--labels", labels)):
        if path is not None and not path.is_file():
            raise InvalidInput(f"{flag} {path}: file not found", field=flag)
    target, instance = _teacher(teacher, config_path)
    if instance_type is not None:
        instance = InstanceConfig(type=instance_type)
    elif instance is None:
        instance = InstanceConfig(type=DEFAULT_INSTANCE)
    timing = Timing(batch_size=batch_size, min_repeats=min_repeats, min_seconds=min_seconds)
    report = run(
        target,
        spec,
        data,
        out_dir=out_dir,
        instance=instance,
        labels=labels,
        name=name,
        holdout=holdout,
        max_drop=max_drop,
        timing=timing,
    )
    print_distill(report)
    student = report.student
    click.echo(f"wrote {student.path}  sha256 {student.sha256}")
    report_path = out_dir / "distill.json"
    try:
        report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise FrugalError(f"{report_path}: cannot write the report: {exc}") from None
    click.echo(f"wrote {report_path}")


def _teacher(teacher: str, config_path: Path | None) -> tuple[Target, InstanceConfig | None]:
    """(the teacher's Target, the config's instance or None)."""
    from frugal.config import load_config
    from frugal.optimize import resolve_target

    file = Path(teacher)
    if config_path is None or (file.is_file() and file.suffix.lower() not in (".yaml", ".yml")):
        if not file.is_file():
            raise InvalidInput(
                f"--teacher {teacher}: no such model file",
                field="--teacher",
                hint="name a model file, or a model of a frugal.yaml with --config",
            )
        return resolve_target(file, device="cpu"), None
    if not config_path.is_file():
        raise InvalidInput(f"--config {config_path}: file not found", field="--config")
    config = load_config(config_path)
    return resolve_target(config_path, model=teacher, device="cpu"), config.instance


__all__ = ["distill"]
