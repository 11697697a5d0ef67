"""Metrics of API keys' daily budgets: the share of each budget spent today (UTC).

The alert rule "a budget 80% spent" reads ``frugal_budget_spent_ratio``; the series are read
from admission's keys and budget book when scraped, nothing on the hot path. Only keys with a
budget have series, so the labels stay bounded by the keys an admin created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class BudgetState(NamedTuple):
    """One key's budget of one kind: ``usd_day`` (dollars) or ``tokens_day``."""

    key: str
    budget: str
    limit: float
    spent: float


class BudgetCollector(Collector):
    def __init__(self, state: Callable[[], Iterable[BudgetState]]) -> None:
        self._state = state

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["key", "budget"]
        limit = GaugeMetricFamily(
            "frugal_budget_limit", "An API key's daily budget (usd_day: dollars, tokens_day: "
            "tokens).", labels=labels,
        )  # fmt: skip
        spent = GaugeMetricFamily(
            "frugal_budget_spent", "What an API key has spent of its daily budget today (UTC).",
            labels=labels,
        )  # fmt: skip
        ratio = GaugeMetricFamily(
            "frugal_budget_spent_ratio", "Share of an API key's daily budget spent today (UTC).",
            labels=labels,
        )  # fmt: skip
        for state in self._state():
            values = [state.key, state.budget]
            limit.add_metric(values, state.limit)
            spent.add_metric(values, state.spent)
            ratio.add_metric(values, state.spent / state.limit if state.limit > 0 else 1.0)
        yield limit
        yield spent
        yield ratio


__all__ = ["BudgetCollector", "BudgetState"]
