"""Records that cross the seams: what a batch cost, and what one item got back."""

from __future__ import annotations

from dataclasses import dataclass

from frugal.errors import FrugalError
from frugal.runtimes.base import Prediction


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item's answer (or error) and the batch it rode in (None if it never ran)."""

    prediction: Prediction | None
    error: FrugalError | None
    queue_s: float
    batch: BatchStats | None
    earlier_cost_usd: float = 0.0  # what earlier cascade tiers spent on this item

    @property
    def cost_usd(self) -> float:
        own = self.batch.cost_per_item_usd if self.batch is not None else 0.0
        return own + self.earlier_cost_usd


__all__ = ["BatchStats", "ItemOutcome"]
