"""``frugal calibrate``'s measuring: every tier of a cascade run on every labeled item.

Each tier runs through frugal's runtimes in batches of its ``max_batch_size``, with the batcher's
failure isolation (``frugal.runtimes.predict_isolated``: one bad item fails alone); each batch's
fastest busy time of TIMED_RUNS is priced as the server prices it (pricer, slots), so an item's
cost per tier is its share of its batch. With an arrival batch each tier's busy time is also
profiled per batch size (batch_profile.py). Choosing the thresholds from what was recorded is
routing's (``frugal.routing.calibrate.choose_thresholds``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from frugal.accounting.prices import Pricer
from frugal.config import ModelConfig
from frugal.errors import FrugalError, InvalidInput
from frugal.optimize.batch_profile import batch_usd, profile_batches
from frugal.routing.batch_costs import BatchProfile
from frugal.routing.calibrate import Calibration, Cascade, TierRecording, choose_thresholds
from frugal.routing.gates import Gate
from frugal.routing.labels import same_label
from frugal.routing.sweep import TierRun
from frugal.runtimes import Model, predict_isolated
from frugal.types import Item, Prediction

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from frugal.optimize.dataset import Dataset

# Each batch is timed this many times and priced at its fastest run: on a shared machine one
# stall (GC, another process on the core) in a cheap tier's ~30 batches can make it look dearer
# than the tier after it (seen in CI). Twice the model calls, the same predictions.
TIMED_RUNS = 2


def record_tiers(
    cascade: Cascade, data: Path, *, progress: bool = True, arrival_batch: int | None = None
) -> TierRecording:
    """Run every tier on every item: each tier's answers, gate scores and $ per item, the
    labels, and (with ``arrival_batch``) each tier's busy time profiled at batch sizes up to the
    one it can see, min(arrival_batch, max_batch_size)."""
    from frugal.accounting import resolve_pricer
    from frugal.optimize.dataset import load_dataset
    from frugal.runtimes import load_model

    pricer = resolve_pricer(cascade.config.instance, file=str(cascade.path))
    datasets: dict[str, Dataset] = {}
    runs: list[TierRun] = []
    busy_per_item: list[float] = []
    labels: list[object] = []
    profiles: list[BatchProfile | None] = []
    with progress_bar(progress) as bar:
        for model_config, gate in zip(cascade.models, cascade.gates, strict=True):
            key = repr(model_config.inputs)
            if key not in datasets:
                datasets[key] = load_dataset(data, model_config.inputs, require_labels=True)
            dataset = datasets[key]
            labels = list(dataset.labels or ())
            model = load_model(model_config)
            task = bar.add_task(model_config.key, total=len(dataset))
            run, busy = run_tier(
                model, model_config, gate, dataset.items, labels, pricer, bar, task
            )
            profile = None
            if arrival_batch is not None:
                largest = min(arrival_batch, model_config.batching.max_batch_size)
                profile = profile_batches(model_config.key, partial(_predict, model),
                                          dataset.items, largest)  # fmt: skip
                run = replace(run, batch_usd=batch_usd(profile, pricer))
            runs.append(run)
            busy_per_item.append(busy)
            profiles.append(profile)
    return TierRecording(runs, busy_per_item, labels, profiles)


def calibrate(
    cascade: Cascade,
    data: Path,
    *,
    target_accuracy: float | None = None,
    max_drop: float = 0.005,
    holdout: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    arrival_batch: int | None = None,
    confidence: float = 0.95,
    grader: str = "exact",
) -> Calibration:
    """Record every tier, then choose the cheapest thresholds meeting the target (the whole of
    ``frugal calibrate`` short of printing; ``choose_thresholds`` documents the options).

    A cascade ending in upstream LLMs (local tiers may come first) is recorded by
    llm_tier_runs.py, its answers judged by ``grader`` (graders.py); a cascade of local models
    compares predictions with the data's labels."""
    if cascade.llm:
        from frugal.optimize.graders import load_grader
        from frugal.optimize.llm_tier_runs import record_llm_tiers

        if arrival_batch is not None:
            raise InvalidInput("--arrival-batch prices local tiers' batches; upstream LLM "
                               "tiers are priced per token", field="--arrival-batch")  # fmt: skip
        recording = record_llm_tiers(cascade, data, load_grader(grader), progress=progress)
    else:
        recording = record_tiers(cascade, data, progress=progress, arrival_batch=arrival_batch)
    return choose_thresholds(cascade, data, recording, target_accuracy=target_accuracy,
                             max_drop=max_drop, holdout=holdout, seed=seed,
                             arrival_batch=arrival_batch, confidence=confidence)  # fmt: skip


def run_tier(
    model: Model,
    config: ModelConfig,
    gate: Gate | None,
    items: list[Item],
    labels: Sequence[object],
    pricer: Pricer,
    bar: Progress,
    task: TaskID,
    *,
    grade: Callable[[object, object], bool] = same_label,
) -> tuple[TierRun, float]:
    """One local tier on every item, in its batches: a TierRun and its busy seconds per item.
    ``grade(value, label)`` says whether an answer is right (a mixed cascade's local tier is
    graded like its LLM tiers: optimize/llm_tier_runs.py)."""
    n = len(items)
    size = config.batching.max_batch_size
    scores = np.full(n, np.nan)
    correct = np.zeros(n, dtype=bool)
    failed = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    busy_total = 0.0
    first_error: BaseException | None = None
    _predict(model, items[:size])  # warm-up: the first call pays one-off setup costs
    for start in range(0, n, size):
        batch = items[start : start + size]
        busy = math.inf
        results: list[Prediction | BaseException] = []
        for _ in range(TIMED_RUNS):  # the fastest run: a one-off stall must not price a tier
            t0 = time.perf_counter()
            results = _predict(model, batch)
            busy = min(busy, time.perf_counter() - t0)
        busy_total += busy
        cost[start : start + len(batch)] = pricer.item_cost_usd(busy, len(batch))
        ok: list[int] = []
        good: list[Prediction] = []
        for j, result in enumerate(results):
            if isinstance(result, BaseException):
                failed[start + j] = True
                first_error = first_error or result
            else:
                ok.append(j)
                good.append(result)
                correct[start + j] = grade(result.value, labels[start + j])
        if gate is not None and ok:
            try:
                given = gate.scores([batch[j] for j in ok], good)
            except Exception as exc:  # a user scorer: report it, never a traceback
                raise InvalidInput(
                    f"scorer {gate.config.scorer} failed on model {config.key}'s answers: {exc}",
                    hint="the scorer takes (inputs, predictions) and returns one score per item",
                ) from exc
            for j, s in zip(ok, given, strict=True):
                scores[start + j] = np.nan if s is None else s
        bar.advance(task, len(batch))
    if failed.all():
        raise InvalidInput(
            f"model {config.key} failed on every item of the data: {first_error}",
            hint="the data's columns must match the model's inputs (same features, same order)",
        )
    op = gate.op if gate is not None else ""
    run = TierRun(config.key, op, scores, correct, failed, cost)
    return run, busy_total / n


def _predict(model: Model, batch: Sequence[Item]) -> list[Prediction | BaseException]:
    """One batch, failures isolated as the batcher isolates them; a FrugalError (frugal's own
    refusal, e.g. a bad input) stops the run with its message instead of counting as a miss."""
    results = predict_isolated(model, batch)
    for result in results:
        if isinstance(result, FrugalError):
            raise result
    return results


@contextmanager
def progress_bar(show: bool) -> Iterator[Progress]:
    """A bar per tier (rich's Progress), hidden when ``show`` is false."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   disable=not show)  # fmt: skip
    with bar:
        yield bar


__all__ = ["TIMED_RUNS", "calibrate", "progress_bar", "record_tiers", "run_tier"]
