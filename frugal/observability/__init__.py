"""Observability: Prometheus metrics, structured logs, and the live cost dashboard (its stats
and its page)."""

from frugal.observability.controller_metrics import ControllerMetrics
from frugal.observability.dashboard import (
    CONTENT_SECURITY_POLICY,
    dashboard_asset,
    dashboard_page,
    shipped_bytes,
)
from frugal.observability.ledger_metrics import LedgerState
from frugal.observability.logs import LogFormat, RequestLog, batch_id, configure_logging
from frugal.observability.metrics import BatcherState, CacheState, ServingMetrics
from frugal.observability.stats import (
    WINDOWS,
    LedgerSource,
    StatsSource,
    Window,
    ledger_document,
    parse_group,
    parse_window,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "WINDOWS",
    "BatcherState",
    "CacheState",
    "ControllerMetrics",
    "LedgerSource",
    "LedgerState",
    "LogFormat",
    "RequestLog",
    "ServingMetrics",
    "StatsSource",
    "Window",
    "batch_id",
    "configure_logging",
    "dashboard_asset",
    "dashboard_page",
    "ledger_document",
    "parse_group",
    "parse_window",
    "shipped_bytes",
]
