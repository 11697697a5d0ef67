"""``frugal calibrate``'s route half: which tiers and gates a cascade has, and the cheapest gate
thresholds that keep its accuracy, chosen from what every tier did on every labeled item.

Measuring (loading the tiers, running them on the data in batches, timing and pricing each
batch) is ``frugal.optimize.tier_runs``, which hands a ``TierRecording`` to ``choose_thresholds``
here. The items are split (seeded, stratified) into a calibration part, where the thresholds
are swept (see sweep.py), and a held-out part, where the chosen thresholds are checked on items
they were not chosen on.

By default costs assume each tier runs full batches; in the server a later tier sees only the
escalated items, so its batches are smaller. ``arrival_batch`` (``--arrival-batch N``) prices
each tier at the batch it will see instead, from a profile of its busy time per batch size
(batch_costs.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frugal.config import EndpointConfig, FrugalConfig, ModelConfig, load_config
from frugal.errors import ConfigError, InvalidInput, NotFound
from frugal.routing.batch_costs import BatchProfile
from frugal.routing.confidence import Target, choose
from frugal.routing.gates import Gate
from frugal.routing.sweep import Outcome, TierRun, alone, frontier, grid, simulate

FORMAT = "frugal-calibrate/1"


@dataclass(frozen=True, slots=True)
class Cascade:
    """An endpoint's cascade as calibration needs it: model configs and their gates."""

    config: FrugalConfig
    path: Path
    endpoint: EndpointConfig
    models: list[ModelConfig]
    gates: list[Gate | None]  # None for the last tier

    @property
    def llm(self) -> bool:
        """A cascade ending in upstream LLMs (runtime openai; local tiers may come first):
        calibrated on prompts with graded answers."""
        return self.models[-1].upstream is not None


@dataclass(frozen=True, slots=True)
class TierRecording:
    """What every tier of a cascade did on every labeled item (``optimize.record_tiers``)."""

    runs: list[TierRun]
    busy_s_per_item: list[float]  # each tier's mean busy seconds per item, in full batches
    labels: list[object]  # one per item, as the data file gives them
    profiles: list[BatchProfile | None]  # busy time per batch size, with an arrival batch


@dataclass(slots=True)
class Calibration:
    """Everything ``frugal calibrate`` found; ``to_json`` is the ``--out`` file."""

    cascade: Cascade
    data: Path
    seed: int
    holdout_share: float
    tiers: list[TierRun]
    busy_s_per_item: list[float]
    calibration_rows: np.ndarray
    holdout_rows: np.ndarray
    target_kind: str  # "target_accuracy" or "max_drop"
    target_value: float
    needed_accuracy: float
    points: list[Outcome]
    frontier: list[Outcome]
    chosen: Outcome | None
    arrival_batch: int | None = None  # None: every tier priced at full batches
    profiles: list[BatchProfile | None] = field(default_factory=list)  # with arrival_batch
    current: dict[str, Outcome | None] = field(default_factory=dict)  # the config's thresholds
    singles: list[dict[str, Outcome | None]] = field(default_factory=list)  # each tier alone
    chosen_holdout: Outcome | None = None
    confidence: float = 0.0  # 0: chosen on the point estimate alone (confidence.py)
    next_cheaper: Outcome | None = None  # the first thresholds whose bound failed
    tested: int = 0  # thresholds tested in sequence (confidence.py) before it stopped

    @property
    def passed(self) -> bool:
        return self.chosen is not None

    @property
    def target(self) -> Target:
        return Target(self.target_kind, self.target_value, self.confidence)

    def bound(self, o: Outcome | None) -> float | None:
        """The drop's upper bound (accuracy's lower bound for a target accuracy) at
        ``confidence``, from the items ``o`` was measured on."""
        return None if o is None or o.items == 0 else self.target.bound(o)

    @property
    def items_needed(self) -> int | None:
        """Items, at today's rates, that would let the next cheaper thresholds pass."""
        return None if self.next_cheaper is None else self.target.items_needed(self.next_cheaper)

    @property
    def best_accuracy(self) -> float:
        return max(p.accuracy for p in self.points)

    def evaluate(self, thresholds: Sequence[float]) -> dict[str, Outcome | None]:
        """These thresholds on the calibration and held-out parts."""
        held = self.holdout_rows
        return {
            "calibration": simulate(
                self.tiers, thresholds, self.calibration_rows, self.arrival_batch
            ),
            "holdout": simulate(self.tiers, thresholds, held, self.arrival_batch)
            if held.size
            else None,
        }

    def to_json(self) -> dict[str, Any]:
        c = self.cascade
        return {
            "format": FORMAT,
            "config": str(c.path),
            "endpoint": c.endpoint.name,
            "data": str(self.data),
            "items": len(self.tiers[0].correct),
            "calibration_items": int(self.calibration_rows.size),
            "holdout_items": int(self.holdout_rows.size),
            "holdout_share": self.holdout_share,
            "seed": self.seed,
            "arrival_batch": self.arrival_batch,
            "target": {
                "kind": self.target_kind,
                "value": self.target_value,
                "accuracy_needed": self.needed_accuracy,
                "confidence": self.confidence,
            },
            "tiers": [
                {
                    "model": t.model,
                    "signal": g.signal if g else None,
                    "op": g.op if g else None,
                    "threshold": g.threshold if g else None,
                    "busy_s_per_item": b,
                    "batch_profile": None if profile is None else profile.to_json(),
                    "alone": {k: _outcome(v) for k, v in single.items()},
                }
                for t, g, b, single, profile in zip(
                    self.tiers,
                    c.gates,
                    self.busy_s_per_item,
                    self.singles,
                    self.profiles or [None] * len(self.tiers),
                    strict=True,
                )
            ],
            "current": {k: _outcome(v) for k, v in self.current.items()},
            "passed": self.passed,
            "best_accuracy": self.best_accuracy,
            "chosen": None
            if self.chosen is None
            else {
                "calibration": _outcome(self.chosen),
                "holdout": _outcome(self.chosen_holdout),
                "bound": self.bound(self.chosen),
            },
            "next_cheaper": None
            if self.next_cheaper is None
            else {
                "calibration": _outcome(self.next_cheaper),
                "bound": self.bound(self.next_cheaper),
                "items_needed": self.items_needed,
            },
            "tested_in_sequence": self.tested,
            "frontier": [_outcome(p) for p in self.frontier],
            "points": [_outcome(p) for p in self.points],
        }


def _outcome(o: Outcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    return {
        "thresholds": list(o.thresholds),
        "accuracy": o.accuracy,
        "usd_per_1k": o.usd_per_1k,
        "escalation_rate": o.escalation_rate,
        "answered": list(o.answered),
        "batch_sizes": list(o.batch_sizes) or None,
        "drop": o.drop,
    }


def resolve_cascade(config_path: Path, endpoint: str) -> Cascade:
    """The endpoint's tiers and gates; errors say which endpoints exist and what a cascade is."""
    config = load_config(config_path)
    names = [e.name for e in config.endpoints]
    found = next((e for e in config.endpoints if e.name == endpoint), None)
    if found is None:
        raise NotFound(
            f"{config_path}: no endpoint {endpoint!r}",
            hint=f"endpoints declared: {', '.join(names) or 'none'}",
        )
    i = names.index(endpoint)
    if found.route is None or found.route.cascade is None:
        raise InvalidInput(
            f"{config_path}: endpoint {endpoint!r} serves one model ({found.model}), not a cascade",
            hint="calibrate needs `route: {cascade: [...]}` with an `accept` gate on each tier "
            "but the last (docs/routing.md)",
        )
    models: list[ModelConfig] = []
    gates: list[Gate | None] = []
    for j, tier in enumerate(found.route.cascade):
        model = config.find_model(tier.model)
        assert model is not None  # load_config checked every reference
        models.append(model)
        where = f"endpoints[{i}].route.cascade[{j}].accept"
        try:
            gates.append(None if tier.accept is None else Gate(tier.accept, field=where))
        except ConfigError as exc:
            raise ConfigError(
                exc.message,
                file=str(config_path),
                hint="the scorer's module must be importable here (check PYTHONPATH)",
            ) from None
    return Cascade(config, config_path, found, models, gates)


def split(labels: Sequence[object], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibration and held-out row indices; stratified by label when every class has 2+."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    if share <= 0:
        return np.arange(n), np.arange(0)
    keys = [str(y) for y in labels]
    classes: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        classes.setdefault(k, []).append(i)
    held: list[int] = []
    if all(len(rows) >= 2 for rows in classes.values()) and len(classes) < n / 2:
        for rows in classes.values():
            order = rng.permutation(rows)
            held.extend(int(i) for i in order[: max(1, round(share * len(rows)))])
    else:
        held = [int(i) for i in rng.permutation(n)[: max(1, round(share * n))]]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def choose_thresholds(
    cascade: Cascade,
    data: Path,
    recording: TierRecording,
    *,
    target_accuracy: float | None = None,
    max_drop: float = 0.005,
    holdout: float = 0.5,
    seed: int = 0,
    arrival_batch: int | None = None,
    confidence: float = 0.95,
) -> Calibration:
    """Split the recorded items, sweep, and choose the cheapest thresholds meeting the target
    with ``confidence`` (confidence.py; 0: on the point estimate alone).

    ``arrival_batch``: price each tier at the batch it will see when the first tier's batches
    hold this many items (see batch_costs.py); None prices every tier at full batches.
    """
    n = arrival_batch
    tiers = recording.runs
    calib, held = split(recording.labels, holdout, seed)
    if calib.size == 0:
        raise InvalidInput(f"{data}: too few items to calibrate on", hint="lower --holdout")
    singles = [
        {"calibration": alone(t, calib, n), "holdout": alone(t, held, n) if held.size else None}
        for t in tiers
    ]
    large = singles[-1]["calibration"]
    assert large is not None
    if target_accuracy is not None:
        kind, value, needed = "target_accuracy", target_accuracy, target_accuracy
    else:
        kind, value, needed = "max_drop", max_drop, large.accuracy - max_drop
    if not 0 <= confidence < 1:
        raise InvalidInput(f"confidence {confidence}: give 0 (point estimate) or 0 < c < 1")
    points = [simulate(tiers, thresholds, calib, n) for thresholds in grid(tiers, calib)]
    choice = choose(points, [t.op for t in tiers[:-1]], Target(kind, value, confidence))
    chosen = choice.chosen
    result = Calibration(
        cascade=cascade, data=data, seed=seed, holdout_share=holdout, tiers=tiers,
        busy_s_per_item=recording.busy_s_per_item, calibration_rows=calib, holdout_rows=held,
        target_kind=kind, target_value=value, needed_accuracy=needed, points=points,
        frontier=frontier(points), chosen=chosen, singles=singles, arrival_batch=n,
        profiles=recording.profiles, confidence=confidence, next_cheaper=choice.stopped_at,
        tested=choice.tested,
    )  # fmt: skip
    current = [g.threshold for g in cascade.gates if g is not None]
    result.current = result.evaluate(current)
    if chosen is not None and held.size:
        result.chosen_holdout = simulate(tiers, chosen.thresholds, held, n)
    return result


__all__ = [
    "FORMAT",
    "Calibration",
    "Cascade",
    "TierRecording",
    "choose_thresholds",
    "resolve_cascade",
    "split",
]
