"""How sure a cascade's thresholds are: a bound on the accuracy they lose, and the choice of the
cheapest thresholds whose bound holds at the asked confidence.

A threshold chosen on a few hundred items is a point estimate; on new items it loses more about
half of the time. Here the loss is bounded instead:

- **The bound.** Against the last tier alone, the cascade *harms* an item (the last tier was
  right, the cascade wrong) or *helps* one (the reverse); its accuracy drop is
  ``P(harm) - P(help)``. Clopper and Pearson's exact binomial interval (Biometrika 26, 1934)
  gives an upper bound on ``P(harm)`` and a lower bound on ``P(help)``, each at ``alpha / 2``
  (Bonferroni), so with probability at least ``1 - alpha`` the drop is below their difference.
  For ``--target-accuracy`` the bound is the interval's lower end on the accuracy, at ``alpha``.
- **The choice.** Thresholds are tested one by one from the strictest (every item escalates) to
  the most permissive, and the sequence stops at the first whose bound fails: fixed-sequence
  testing, as in Angelopoulos, Bates, Candès, Jordan and Lei, "Learn then Test: Calibrating
  Predictive Algorithms to Achieve Risk Control" (2021). Because the order is fixed by how
  strict the thresholds are, not by their results, the chance that any passed threshold really
  loses more than the limit stays at most ``alpha`` with no correction for the number tried.

scipy's beta quantiles do the arithmetic (scipy comes with scikit-learn, a core dependency).
A small calibration set gives a careful choice, a large one a cheaper one; ``items_needed`` says
how many items would let the next, cheaper threshold pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frugal.routing.sweep import Outcome

MAX_ITEMS_NEEDED = 100_000_000  # past this, "more items" is no answer: the point estimate fails


def upper(k: float, n: float, alpha: float) -> float:
    """Clopper-Pearson: the largest rate whose chance of k or fewer in n is >= alpha."""
    from scipy.stats import beta

    if n <= 0:
        return 1.0
    return 1.0 if k >= n else float(beta.ppf(1 - alpha, k + 1, n - k))


def lower(k: float, n: float, alpha: float) -> float:
    """Clopper-Pearson: the smallest rate whose chance of k or more in n is >= alpha."""
    from scipy.stats import beta

    if n <= 0:
        return 0.0
    return 0.0 if k <= 0 else float(beta.ppf(alpha, k, n - k + 1))


def drop_bound(harmed: float, helped: float, n: float, confidence: float) -> float:
    """The accuracy drop's upper bound from n items (module docstring); 0: the point estimate.
    The drift check while serving (drift.py) uses the same bound as calibration."""
    if confidence == 0:
        return (harmed - helped) / n if n else 0.0
    alpha = 1.0 - confidence
    return upper(harmed, n, alpha / 2) - lower(helped, n, alpha / 2)


@dataclass(frozen=True, slots=True)
class Target:
    """What the cascade must keep, and how sure the choice must be of it."""

    kind: str  # "max_drop" or "target_accuracy"
    value: float
    confidence: float  # 0: the point estimate alone, as calibrate chose before it had bounds

    @property
    def alpha(self) -> float:
        return 1.0 - self.confidence

    def bound(self, o: Outcome) -> float:
        """The drop's upper bound, or (target_accuracy) the accuracy's lower bound."""
        return self._bound(o.harmed, o.helped, round(o.accuracy * o.items), o.items)

    def _bound(self, harmed: float, helped: float, correct: float, n: float) -> float:
        if self.kind == "target_accuracy":
            if self.confidence == 0:
                return correct / n if n else 0.0
            return lower(correct, n, self.alpha)
        return drop_bound(harmed, helped, n, self.confidence)

    def holds(self, o: Outcome) -> bool:
        bound = self.bound(o)
        if self.kind == "target_accuracy":
            return bound >= self.value - 1e-12
        return bound <= self.value + 1e-12

    def items_needed(self, o: Outcome) -> int | None:
        """Items that would let ``o`` pass if they showed the same rates; None when even the
        point estimate misses the target (more items only make that surer)."""
        if o.items == 0 or self.confidence == 0:
            return None
        rates = (o.harmed / o.items, o.helped / o.items, o.accuracy)
        point = rates[2] if self.kind == "target_accuracy" else rates[0] - rates[1]
        if (point <= self.value) if self.kind == "target_accuracy" else (point >= self.value):
            return None

        def passes(n: int) -> bool:
            bound = self._bound(rates[0] * n, rates[1] * n, rates[2] * n, n)
            return bound >= self.value if self.kind == "target_accuracy" else bound <= self.value

        lo, hi = o.items, o.items
        while not passes(hi):
            lo, hi = hi, hi * 2
            if hi > MAX_ITEMS_NEEDED:
                return None
        while hi - lo > max(1, lo // 1000):  # to 0.1%: an estimate, not a promise
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if passes(mid) else (mid, hi)
        return hi


@dataclass(frozen=True, slots=True)
class Choice:
    chosen: Outcome | None
    tested: int  # thresholds tested before the sequence stopped
    stopped_at: Outcome | None  # the first threshold whose bound failed: the next cheaper one


def strictest_first(points: Sequence[Outcome], ops: Sequence[str]) -> list[Outcome]:
    """The points from the strictest thresholds (most escalation) to the most permissive.

    A gate's thresholds are ranked from its strict end (the highest for ``>=``/``>``, the lowest
    for ``<=``/``<``); a combination's place is the sum of its gates' ranks, so one gate is
    simply its thresholds in order and several move together from strict to loose.
    """
    ranks: list[dict[float, int]] = []
    for g, op in enumerate(ops):
        values = sorted({p.thresholds[g] for p in points}, reverse=op in (">=", ">"))
        ranks.append({v: i for i, v in enumerate(values)})

    def place(p: Outcome) -> tuple[int, tuple[int, ...]]:
        each = tuple(ranks[g][t] for g, t in enumerate(p.thresholds))
        return sum(each), each

    return sorted(points, key=place)


def choose(points: Sequence[Outcome], ops: Sequence[str], target: Target) -> Choice:
    """The cheapest thresholds that pass the fixed sequence of tests (module docstring); at
    confidence 0, the cheapest whose point estimate meets the target, as before bounds."""
    passed: list[Outcome] = []
    stopped = None
    if target.confidence == 0:
        passed = [p for p in points if target.holds(p)]
    else:
        for p in strictest_first(points, ops):
            if not target.holds(p):
                stopped = p
                break
            passed.append(p)
    chosen = min(passed, key=lambda p: (p.usd_per_1k, -p.accuracy, p.escalation_rate), default=None)
    return Choice(chosen, len(passed) + (stopped is not None), stopped)


__all__ = ["Choice", "Target", "choose", "drop_bound", "lower", "strictest_first", "upper"]
