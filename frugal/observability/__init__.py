"""Observability: Prometheus metrics, alert rules and their evaluation from the ledger."""

from frugal.observability.alert_check import ROLLBACK_ACTIONS, Budget, Firing, Rollback, evaluate
from frugal.observability.alert_rules import KINDS, AlertKind, build_rules, render_rules
from frugal.observability.budget_metrics import BudgetCollector, BudgetState
from frugal.observability.controller_metrics import ControllerMetrics
from frugal.observability.ledger_metrics import LedgerState
from frugal.observability.metrics import BatcherState, CacheState, ServingMetrics

__all__ = [
    "KINDS",
    "ROLLBACK_ACTIONS",
    "AlertKind",
    "BatcherState",
    "Budget",
    "BudgetCollector",
    "BudgetState",
    "CacheState",
    "ControllerMetrics",
    "Firing",
    "LedgerState",
    "Rollback",
    "ServingMetrics",
    "build_rules",
    "evaluate",
    "render_rules",
]
