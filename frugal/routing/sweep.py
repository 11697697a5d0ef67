"""The offline cascade: replay each tier's recorded answers under other gate thresholds.

Calibration runs every tier once on every item, then asks "what if the gates were at these
thresholds?" without calling a model again. The rules are cascade.py's: a tier's answer is kept
when its gate accepts the item's score; an item with no score (or whose tier failed) goes on;
the last tier keeps every answer; an item costs the sum of the tiers it went through.

Candidate thresholds are cuts between the distinct gate scores of the calibration items, each
written as the shortest decimal that makes the same cut (``0.93``, not ``0.9312408``). A
2-tier cascade sweeps every cut (or 1,000 quantile cuts when there are more); with more tiers
every gate is swept over a coarse quantile grid jointly (about 2,000 combinations in all).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from frugal.routing.batch_costs import tier_batch_size
from frugal.routing.gates import OPERATORS

EXACT_CUTS = 1000  # a 2-tier sweep tries every cut up to this many, else quantile cuts
JOINT_COMBINATIONS = 2000  # about this many threshold combinations for 3 tiers or more


@dataclass(frozen=True, slots=True)
class TierRun:
    """One tier's recorded answers on every item: gate score, right or wrong, and $ spent."""

    model: str
    op: str  # the gate's comparison (">=" ...); "" for the last tier
    scores: np.ndarray  # float per item, nan where the tier gave no score or failed
    correct: np.ndarray  # bool per item
    failed: np.ndarray  # bool per item: the model raised on it
    cost_usd: np.ndarray  # float per item: this tier's share of the batch it ran in
    # (batch sizes, $ of one batch at each), profiled for --arrival-batch, which prices the
    # tier at the batch it will see instead of at cost_usd's full batches (batch_costs.py)
    batch_usd: tuple[tuple[int, ...], tuple[float, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A cascade's quality and price on a set of items, at one threshold per gate."""

    thresholds: tuple[float, ...]
    accuracy: float
    usd_per_1k: float
    escalation_rate: float  # share of items that went past the first tier
    answered: tuple[float, ...]  # share of items each tier answered
    batch_sizes: tuple[float, ...] = ()  # with an arrival batch: the batch each tier was priced at
    # Against the last tier alone, item by item (confidence.py bounds the drop from these):
    items: int = 0
    harmed: int = 0  # the last tier was right and the cascade wrong
    helped: int = 0  # the cascade was right and the last tier wrong

    @property
    def drop(self) -> float:
        """Accuracy lost against the last tier alone on the same items (the point estimate)."""
        return (self.harmed - self.helped) / self.items if self.items else 0.0


def simulate(
    tiers: Sequence[TierRun],
    thresholds: Sequence[float],
    rows: np.ndarray,
    arrival_batch: int | None = None,
) -> Outcome:
    """The cascade on the items ``rows`` (indices) with these gate thresholds.

    With ``arrival_batch`` N, a tier reached by a share s of the items is priced at a batch of
    N x s items (at least 1, at most its largest profiled size) instead of its full-batch cost.
    """
    n = len(rows)
    alive = np.ones(n, dtype=bool)
    correct = np.zeros(n, dtype=bool)
    cost = np.zeros(n)
    answered: list[float] = []
    sizes: list[float] = []
    for t, tier in enumerate(tiers):
        if arrival_batch is not None and tier.batch_usd is not None:
            size = tier_batch_size(arrival_batch, float(alive.mean()) if n else 1.0, tier.batch_usd)
            sizes.append(size)
            cost += np.where(alive, float(np.interp(size, *tier.batch_usd)) / size, 0.0)
        else:
            cost += np.where(alive, tier.cost_usd[rows], 0.0)
        if t == len(tiers) - 1:
            keep = alive
        else:
            with np.errstate(invalid="ignore"):
                accepts = OPERATORS[tier.op](tier.scores[rows], thresholds[t])  # nan: False
            keep = alive & accepts & ~tier.failed[rows]
        correct |= keep & tier.correct[rows]
        answered.append(float(keep.sum()) / max(n, 1))
        alive = alive & ~keep
    last_correct = tiers[-1].correct[rows]
    return Outcome(
        thresholds=tuple(float(x) for x in thresholds),
        accuracy=float(correct.mean()) if n else 0.0,
        usd_per_1k=1000.0 * float(cost.mean()) if n else 0.0,
        escalation_rate=1.0 - answered[0],
        answered=tuple(answered),
        batch_sizes=tuple(sizes),
        items=n,
        harmed=int((last_correct & ~correct).sum()),
        helped=int((correct & ~last_correct).sum()),
    )


def alone(tier: TierRun, rows: np.ndarray, arrival_batch: int | None = None) -> Outcome:
    """One tier answering every item by itself (small-only, large-only)."""
    return simulate([tier], (), rows, arrival_batch)


def candidates(scores: np.ndarray, op: str, *, cuts: int | None = None) -> list[float]:
    """Thresholds that split ``scores`` in every distinct way (or ``cuts`` quantile ways).

    Includes "accept all" and "accept none"; each is the shortest decimal giving its cut.
    """
    sign = 1.0 if op in (">=", ">") else -1.0
    z = np.unique(sign * scores[np.isfinite(scores)])  # sorted: accept the high end of z
    if z.size == 0:
        return [0.0]
    positions = list(range(z.size + 1))  # cut j accepts z >= z[j]; j = size accepts none
    if cuts is not None and len(positions) > cuts + 1:
        picked = np.unique(np.round(np.linspace(0, z.size, cuts + 1)).astype(int))
        positions = [int(j) for j in picked]
    strict = op in (">", "<")
    out = []
    for j in positions:
        lo = float(z[j - 1]) if j > 0 else -math.inf
        hi = float(z[j]) if j < z.size else math.inf
        out.append(sign * _shortest(lo, hi, strict=strict) + 0.0)  # no -0.0
    return sorted(set(out))


def _shortest(lo: float, hi: float, *, strict: bool) -> float:
    """The shortest decimal t with lo < t <= hi (``>=``) or lo <= t < hi (``>``)."""

    def fits(t: float) -> bool:
        return (lo <= t < hi) if strict else (lo < t <= hi)

    for digits in range(16):
        step = 10.0**-digits
        if strict:
            t = (math.ceil(hi / step) - 1) * step if math.isinf(lo) else math.ceil(lo / step) * step
        else:
            t = (
                (math.floor(lo / step) + 1) * step
                if math.isinf(hi)
                else math.floor(hi / step) * step
            )
        t = round(t, digits)
        if fits(t):
            return t
    if strict:
        return hi - 1.0 if math.isinf(lo) else lo
    return lo + 1.0 if math.isinf(hi) else hi


def grid(tiers: Sequence[TierRun], rows: np.ndarray) -> list[tuple[float, ...]]:
    """Every threshold combination to try: exact cuts for one gate, a joint grid for more."""
    gates = tiers[:-1]
    if len(gates) == 1:
        return [(t,) for t in candidates(gates[0].scores[rows], gates[0].op, cuts=EXACT_CUTS)]
    per_gate = max(4, round(JOINT_COMBINATIONS ** (1 / len(gates))) - 1)
    axes = [candidates(g.scores[rows], g.op, cuts=per_gate) for g in gates]
    return list(itertools.product(*axes))


def frontier(points: Sequence[Outcome]) -> list[Outcome]:
    """The Pareto frontier: from cheap to dear, each point more accurate than all cheaper ones."""
    best = -1.0
    out = []
    for p in sorted(points, key=lambda p: (p.usd_per_1k, -p.accuracy)):
        if p.accuracy > best:
            out.append(p)
            best = p.accuracy
    return out


def cheapest(points: Sequence[Outcome], accuracy: float) -> Outcome | None:
    """The cheapest combination at or above ``accuracy`` (ties: the more accurate)."""
    meeting = [p for p in points if p.accuracy >= accuracy - 1e-12]
    if not meeting:
        return None
    return min(meeting, key=lambda p: (p.usd_per_1k, -p.accuracy, p.escalation_rate))


__all__ = [
    "EXACT_CUTS",
    "JOINT_COMBINATIONS",
    "Outcome",
    "TierRun",
    "alone",
    "candidates",
    "cheapest",
    "frontier",
    "grid",
    "simulate",
]
