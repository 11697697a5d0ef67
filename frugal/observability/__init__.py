"""Observability: Prometheus metrics now; alerts and the dashboard page plug in here later."""

from frugal.observability.controller_metrics import ControllerMetrics
from frugal.observability.ledger_metrics import LedgerState
from frugal.observability.metrics import BatcherState, CacheState, ServingMetrics

__all__ = ["BatcherState", "CacheState", "ControllerMetrics", "LedgerState", "ServingMetrics"]
