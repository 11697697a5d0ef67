"""``frugal distill``: a small student trained on a large teacher's answers, and what it saves.

The steps (docs/distill.md):

1. the teacher answers every unlabeled item (distill_teacher.py: batched, through the runtimes);
2. a seeded ``holdout`` share of the items is set aside; the student trains on the rest, on the
   teacher's soft or hard labels (distill_train.py);
3. the student is exported to ONNX (skl2onnx), its sha256 taken, and loaded back through the onnx
   runtime as the server loads it: agreement with the teacher is measured on the held-out items
   with that loaded file, and so is whether it answers what the in-memory student answers;
4. with ``labels``: the teacher's and the student's accuracy on them;
5. both are timed by ``profile_model`` (what ``frugal profile`` runs) at batch 1 and a larger
   batch and priced by ``project_cost`` (what ``frugal plan`` uses): $ per 1k items of busy time;
6. a cascade config is written (student first, teacher last); with ``labels`` its gate threshold
   is the one ``frugal calibrate`` picks (the same code, with its defaults: half the labels
   held out, 95% confidence; ``max_drop`` is calibrate's ``--max-drop``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from frugal.config import InstanceConfig
from frugal.errors import InvalidInput
from frugal.optimize.distill_cascade import (
    CASCADE_ENDPOINT,
    calibrate_gate,
    models_entry,
    write_cascade,
)
from frugal.optimize.distill_spec import StudentSpec
from frugal.optimize.profile import Profile, hardware_record
from frugal.optimize.target import (
    Target,
    display_path,
    limit_threads,
    load_target,
    resolve_target,
    sample_items,
)
from frugal.optimize.variants import Timing, step_progress, timed
from frugal.routing.labels import same_label
from frugal.runtimes import Model, sha256_of

FORMAT = "frugal-distill/1"
MIN_ITEMS = 10


@dataclass(frozen=True, slots=True)
class Side:
    """The teacher or the student as measured: file, size, accuracy, timings and $ per 1k."""

    name: str
    runtime: str
    path: str | None
    sha256: str | None
    size_bytes: int | None
    profile: Profile
    usd_per_1k: dict[int, float]  # by batch size: busy time only (the ledger's allocated cost)
    accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runtime": self.runtime,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "accuracy": self.accuracy,
            "points": [
                {
                    "batch_size": p.batch_size,
                    "p50_ms": p.p50_ms,
                    "p99_ms": p.p99_ms,
                    "items_per_s": p.items_per_s,
                    "usd_per_1k": self.usd_per_1k[p.batch_size],
                }
                for p in self.profile.points
            ],
        }


@dataclass(frozen=True, slots=True)
class DistillReport:
    """Everything ``frugal distill`` measured; ``to_dict`` is the JSON report."""

    teacher: Side
    student: Side
    spec: StudentSpec
    targets_used: str  # "soft" or "hard": what the student actually learned from
    data: str
    train_items: int
    holdout_items: int
    agreement: float  # student vs teacher labels on the held-out unlabeled items
    onnx_agreement: float  # the exported file vs the in-memory student on the same items
    models_entry: dict[str, Any]
    cascade_config: Path
    instance: dict[str, Any]
    hardware: dict[str, Any]
    labels: str | None = None
    labeled_items: int = 0
    calibration: dict[str, Any] | None = None  # the chosen gate, or why there is none
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "spec": self.spec.record(),
            "targets_used": self.targets_used,
            "data": self.data,
            "train_items": self.train_items,
            "holdout_items": self.holdout_items,
            "agreement": self.agreement,
            "onnx_agreement": self.onnx_agreement,
            "labels": self.labels,
            "labeled_items": self.labeled_items,
            "teacher": self.teacher.to_dict(),
            "student": self.student.to_dict(),
            "instance": self.instance,
            "hardware": self.hardware,
            "models_entry": self.models_entry,
            "cascade_config": str(self.cascade_config),
            "calibration": self.calibration,
        }


def distill(
    teacher: Target,
    spec: StudentSpec,
    data: Path,
    *,
    out_dir: Path,
    instance: InstanceConfig,
    labels: Path | None = None,
    name: str | None = None,
    holdout: float = 0.2,
    max_drop: float = 0.005,
    timing: Timing | None = None,
    progress: bool = True,
) -> DistillReport:
    """Run the teacher, train, export, measure and calibrate (steps in the module docstring)."""
    from frugal.accounting import resolve_pricer
    from frugal.optimize.distill_teacher import run_teacher
    from frugal.optimize.quality import answers

    timing = timing or Timing()
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"-o {out_dir}: not a folder", field="-o")
    name = name or f"{teacher.config.name}-student"
    if name == teacher.config.name:
        raise InvalidInput(f"--name {name}: that is the teacher's name", field="--name")
    pricer = resolve_pricer(instance)
    teacher_model = load_target(teacher)
    items, _ = sample_items(teacher, teacher_model, data)
    if len(items) < MIN_ITEMS:
        raise InvalidInput(
            f"{data}: {len(items)} items; distilling needs at least {MIN_ITEMS}", field="--data"
        )
    labeled = _labeled(teacher, teacher_model, labels)
    # the teacher's own bar counts items; rich shows one live display at a time, so it comes first
    taught = run_teacher(teacher_model, items, progress=progress)
    with step_progress(progress, 4, "distilling") as advance:
        train, held = _split(len(items), holdout, spec.seed)
        advance(f"training the student on {train.size} items")
        out_dir.mkdir(parents=True, exist_ok=True)
        student = _train_and_export(spec, items, taught, train, held, out_dir, name)
        target, used, entry = student.target, student.used, student.entry
        student_model = load_target(target)
        held_items = [items[i] for i in held]
        advance(f"student vs teacher on {held.size} held-out items")
        served = answers(student_model, held_items)
        agreement = _agree(served, [taught.labels[i] for i in held])
        onnx_agreement = _agree(served, student.held_labels)
        teacher_acc = student_acc = None
        if labeled is not None:
            teacher_acc = _agree(answers(teacher_model, labeled.items), labeled.labels)
            student_acc = _agree(answers(student_model, labeled.items), labeled.labels)
        advance("timing teacher and student")
        sample = held_items or items
        with limit_threads(teacher.threads):  # BLAS pools at the worker's threads, as profile
            teacher_side = _side(teacher, teacher_model, sample, timing, pricer, teacher_acc)
            student_side = _side(target, student_model, sample, timing, pricer, student_acc)
        advance("writing the cascade config")
        config_path = write_cascade(out_dir, teacher, entry, instance)
    calibration = None
    if labels is not None:
        calibration = calibrate_gate(config_path, labels, max_drop, progress)
    return DistillReport(
        teacher=teacher_side,
        student=student_side,
        spec=spec,
        targets_used=used,
        data=str(data),
        train_items=int(train.size),
        holdout_items=int(held.size),
        agreement=agreement,
        onnx_agreement=onnx_agreement,
        models_entry=entry,
        cascade_config=config_path,
        labels=str(labels) if labels else None,
        labeled_items=len(labeled.items) if labeled is not None else 0,
        calibration=calibration,
        instance={
            "type": pricer.instance,
            "price_usd_per_hour": pricer.price_usd_per_hour,
            "slots": pricer.slots,
        },
        hardware=hardware_record("cpu"),
    )


@dataclass(frozen=True, slots=True)
class _Student:
    target: Target  # the exported student, as the server loads it
    used: str  # "soft" or "hard"
    entry: dict[str, Any]  # its models: entry
    held_labels: list[Any]  # the in-memory student's answers on the held-out items


def _train_and_export(
    spec: StudentSpec,
    items: list[Any],
    taught: Any,
    train: np.ndarray,
    held: np.ndarray,
    out_dir: Path,
    name: str,
) -> _Student:
    """Fit the spec's student on the training rows, export it, and answer the held-out rows."""
    path = out_dir / f"{name}.onnx"
    if spec.kind == "text":
        from frugal.optimize.distill_text import embed, export_head, fit_head, head_labels

        x = embed(items)
        head, classes, used = fit_head(spec, x[train], taught.take(train))
        config = export_head(head, classes, path, name)
        target = Target(
            config=config,
            source=path,
            artifact=path,
            sha256=sha256_of(path),
            threads=1,
            device="cpu",
        )
        entry = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        entry = {"name": name, "version": "1", "runtime": "python", **entry}
        return _Student(target, used, entry, head_labels(head, classes, x[held]))
    from frugal.optimize.distill_train import export_onnx, feature_matrix, fit_student

    x = feature_matrix(items)
    estimator, used = fit_student(spec, x[train], taught.take(train))
    export_onnx(estimator, x.shape[1], path)
    target = resolve_target(path, threads=1, device="cpu")
    entry = models_entry(name, path, target.sha256, x.shape[1])
    return _Student(target, used, entry, estimator.predict(x[held]).tolist())


def _labeled(teacher: Target, model: Model, labels: Path | None) -> Any:
    if labels is None:
        return None
    from frugal.optimize.dataset import load_dataset
    from frugal.optimize.target import input_specs

    try:
        return load_dataset(labels, input_specs(teacher, model), require_labels=True)
    except InvalidInput as exc:
        raise InvalidInput(f"--labels {exc.message}", field="--labels", hint=exc.hint) from None


def _split(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train rows, held-out rows); both keep at least one item when share > 0."""
    order = np.random.default_rng(seed).permutation(n)
    count = 0 if share <= 0 else min(n - 1, max(1, round(share * n)))
    return np.sort(order[count:]), np.sort(order[:count])


def _agree(values: list[Any], reference: list[Any]) -> float:
    if not reference:
        return float("nan")
    hits = sum(same_label(a, b) for a, b in zip(values, reference, strict=True))
    return hits / len(reference)


def _side(
    target: Target,
    model: Model,
    items: list[Any],
    timing: Timing,
    pricer: Any,
    accuracy: float | None,
) -> Side:
    from frugal.optimize.costing import project_cost

    profile = timed(model, items, target, timing)
    usd = {
        p.batch_size: project_cost(
            price_usd_per_hour=pricer.price_usd_per_hour,
            slots=pricer.slots,
            batch_size=p.batch_size,
            items_per_s_per_slot=p.items_per_s,
            qps=1.0,
            headroom=1.0,
        ).allocated_usd_per_1k
        for p in profile.points
    }
    record = target.record()
    return Side(
        name=target.config.key,
        runtime=target.config.runtime,
        path=record["path"],
        sha256=target.sha256,
        size_bytes=record["size_bytes"],
        profile=profile,
        usd_per_1k=usd,
        accuracy=accuracy,
    )


__all__ = ["CASCADE_ENDPOINT", "FORMAT", "DistillReport", "Side", "display_path", "distill"]
