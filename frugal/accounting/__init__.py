"""Accounting: prices, the cost of each request, the ledger and reports over it."""

from frugal.accounting.catalog import (
    InstanceType,
    ServerlessOffer,
    age_in_months,
    load_catalog,
    load_serverless,
)
from frugal.accounting.ledger import (
    BatchRow,
    Ledger,
    LedgerRow,
    LedgerStats,
    QueuedLedger,
    SqliteLedger,
)
from frugal.accounting.ledger_store import (
    build_ledger,
    check_ledger_url,
    ledger_location,
    open_reader,
)
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
    "QueuedLedger",
    "Report",
    "ReportRow",
    "ServerlessOffer",
    "SqliteLedger",
    "age_in_months",
    "build_ledger",
    "build_report",
    "check_ledger_url",
    "format_tier_costs",
    "ledger_location",
    "load_catalog",
    "load_serverless",
    "open_reader",
    "parse_tier_costs",
    "resolve_pricer",
    "resolve_window",
]
