"""The vocabulary every layer shares: an item, a model's answer, a batch, an item's outcome.

Runtimes produce predictions, the batcher wraps them in outcomes with the batch they rode in,
routers and the cache pass outcomes on, and accounting prices them: so these records live below
all of them, and none of those folders has to import another to speak of an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from frugal.errors import FrugalError

Item = Any  # one validated input: a numpy row, a dict of rows (several inputs), or a str


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which artifact answered: shown in ``x-frugal-model`` and written in the ledger."""

    name: str
    version: str
    sha256: str | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class Prediction:
    """One item's answer; ``confidence`` is in [0, 1] where the model can give one.

    ``margin`` is the top probability minus the runner-up's (classifiers): it tells "torn
    between two classes" apart from "sure of one". ``tokens`` is what the item consumed where
    the model counts tokens (LLM upstreams, text models that choose to): per-key daily token
    budgets sum it from the ledger."""

    value: Any
    confidence: float | None = None
    tokens: int = 0
    margin: float | None = None  # top class probability minus the second: a cascade gate


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class BatchStats:
    """What one ``predict_batch`` run cost and why it was released: metrics and ledger read it."""

    model: str  # name:version
    size: int
    reason: str  # full | max_wait | linger | drain
    started_at: float  # unix seconds
    busy_s: float
    cost_per_item_usd: float
    queue_s: tuple[float, ...]  # each item's wait before the batch ran
    failed: int
    padded_size: int | None = None  # max item size x items, for sized models
    padding_waste: float | None = None  # share of the padded size that was padding


Spend = tuple[str, float]  # (model name:version, dollars of its batches' time)


@dataclass(slots=True)  # not frozen: built per request, and frozen inits cost 4x
class ItemOutcome:
    """One item's answer (or error), the model version it came from, and what it cost.

    ``batch`` is the batch it rode in (None if it never ran: a cache hit, an expired item).
    ``earlier`` is what earlier cascade tiers spent on it before this one answered, per tier, so
    the ledger can put each tier's dollars on that tier.
    """

    prediction: Prediction | None
    error: FrugalError | None
    queue_s: float
    batch: BatchStats | None
    model: str = ""  # name:version that answered or failed; "" or "-" when none was asked
    earlier: tuple[Spend, ...] = ()

    @property
    def own_cost_usd(self) -> float:
        return self.batch.cost_per_item_usd if self.batch is not None else 0.0

    @property
    def earlier_cost_usd(self) -> float:
        return math.fsum(usd for _, usd in self.earlier)

    @property
    def cost_usd(self) -> float:
        return self.own_cost_usd + self.earlier_cost_usd

    @property
    def spend(self) -> tuple[Spend, ...]:
        """Every model version that ran this item, in order, with its share of that batch."""
        if self.batch is None:
            return self.earlier
        return (*self.earlier, (self.batch.model, self.batch.cost_per_item_usd))


__all__ = ["BatchStats", "Item", "ItemOutcome", "ModelRef", "Prediction", "Spend"]
