"""Observability: Prometheus metrics, alert rules and their evaluation from the ledger."""

from frugal.observability.budget_metrics import BudgetCollector, BudgetState
from frugal.observability.controller_metrics import ControllerMetrics
from frugal.observability.ledger_metrics import LedgerState
from frugal.observability.metrics import BatcherState, CacheState, ServingMetrics

__all__ = [
    "BatcherState",
    "BudgetCollector",
    "BudgetState",
    "CacheState",
    "ControllerMetrics",
    "LedgerState",
    "ServingMetrics",
]
