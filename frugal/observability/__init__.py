"""Observability: Prometheus metrics, structured logs, alert rules and their evaluation from the
ledger, and the live cost dashboard (its stats and its page)."""

from frugal.observability.alert_check import ROLLBACK_ACTIONS, Budget, Firing, Rollback, evaluate
from frugal.observability.alert_rules import KINDS, AlertKind, build_rules, render_rules
from frugal.observability.budget_metrics import BudgetCollector, BudgetState
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
    "KINDS",
    "ROLLBACK_ACTIONS",
    "WINDOWS",
    "AlertKind",
    "BatcherState",
    "Budget",
    "BudgetCollector",
    "BudgetState",
    "CacheState",
    "ControllerMetrics",
    "Firing",
    "LedgerSource",
    "LedgerState",
    "LogFormat",
    "RequestLog",
    "Rollback",
    "ServingMetrics",
    "StatsSource",
    "Window",
    "batch_id",
    "build_rules",
    "configure_logging",
    "dashboard_asset",
    "dashboard_page",
    "evaluate",
    "ledger_document",
    "parse_group",
    "parse_window",
    "render_rules",
    "shipped_bytes",
]
