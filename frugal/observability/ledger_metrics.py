"""Metrics of the ledger itself: rows written, rejected and lost, and whether it is writing.

An answer with no ledger row is money nobody can account for; these series make that visible
(alert on ``frugal_ledger_healthy == 0`` or any rise of ``frugal_ledger_rows_lost_total``).
They are read from the ledger when scraped: nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class LedgerState(NamedTuple):
    """What the ledger reports; counts per table (``requests``, ``batches``, ``payloads``)."""

    healthy: bool
    written: Mapping[str, int]
    rejected: Mapping[str, int]
    lost: Mapping[str, int]
    held: int


class LedgerCollector(Collector):
    def __init__(self, state: Callable[[], LedgerState]) -> None:
        self._state = state

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        state = self._state()
        for name, help_text, counts in (
            ("frugal_ledger_rows_written", "Rows committed to the ledger.", state.written),
            ("frugal_ledger_rows_rejected",
             "Rows the ledger skipped because a value could not be stored (the log names them).",
             state.rejected),
            ("frugal_ledger_rows_lost",
             "Rows given up while the ledger file took no writes (full disk, file deleted).",
             state.lost),
        ):  # fmt: skip
            family = CounterMetricFamily(name, help_text, labels=["table"])
            for table, count in sorted(counts.items()):
                family.add_metric([table], count)
            yield family
        yield GaugeMetricFamily(
            "frugal_ledger_rows_held",
            "Rows waiting for the ledger file to take writes again.",
            value=state.held,
        )
        yield GaugeMetricFamily(
            "frugal_ledger_healthy",
            "1 while the ledger writes; 0 while its writes keep failing (readiness is off).",
            value=1.0 if state.healthy else 0.0,
        )


__all__ = ["LedgerCollector", "LedgerState"]
