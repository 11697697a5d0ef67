"""Observability: Prometheus metrics, structured logs; alerts and the dashboard plug in here."""

from frugal.observability.controller_metrics import ControllerMetrics
from frugal.observability.ledger_metrics import LedgerState
from frugal.observability.logs import LogFormat, RequestLog, batch_id, configure_logging
from frugal.observability.metrics import BatcherState, CacheState, ServingMetrics

__all__ = [
    "BatcherState",
    "CacheState",
    "ControllerMetrics",
    "LedgerState",
    "LogFormat",
    "RequestLog",
    "ServingMetrics",
    "batch_id",
    "configure_logging",
]
