"""Accounting: prices, the cost of each request, the ledger and reports over it."""

from frugal.accounting.catalog import (
    InstanceType,
    ServerlessOffer,
    age_in_months,
    load_catalog,
    load_serverless,
)
from frugal.accounting.ledger import BatchRow, Ledger, LedgerRow, LedgerStats, SqliteLedger
from frugal.accounting.prices import Pricer, resolve_pricer
from frugal.accounting.report import Report, ReportRow, build_report, resolve_window
from frugal.accounting.tier_costs import format_tier_costs, parse_tier_costs

__all__ = [
    "BatchRow",
    "InstanceType",
    "Ledger",
    "LedgerRow",
    "LedgerStats",
    "Pricer",
    "Report",
    "ReportRow",
    "ServerlessOffer",
    "SqliteLedger",
    "age_in_months",
    "build_report",
    "format_tier_costs",
    "load_catalog",
    "load_serverless",
    "parse_tier_costs",
    "resolve_pricer",
    "resolve_window",
]
