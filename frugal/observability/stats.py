"""The dashboard's JSON document: one window of the ledger, plus the running server's live state.

The ledger is the truth for anything over a window (15 min to 7 days, across restarts and
worker processes); the live part (queue depth, this process's cache counters) is what only the
running process knows. The ledger part is a few queries over the window's rows: it blocks, so
``StatsSource`` runs it in a worker thread, and answers every poller of one window from one
query at most once per ``min_interval_s``, so many open dashboards cost what one does.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.accounting.ledger_schema import ensure_schema
from frugal.accounting.ledger_store import open_reader
from frugal.accounting.report import GroupBy
from frugal.accounting.window_stats import GROUPINGS, begin_snapshot, window_stats
from frugal.config import is_postgres_url
from frugal.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Window:
    """A time window the dashboard offers, and the width of its chart's buckets."""

    name: str
    span_s: float
    bucket_s: float


WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("15m", 900.0, 30.0),
        Window("1h", 3600.0, 60.0),
        Window("24h", 86400.0, 900.0),
        Window("7d", 7 * 86400.0, 7200.0),
    )
}
DEFAULT_WINDOW = "1h"


def parse_window(text: str | None) -> Window:
    """``15m``, ``1h``, ``24h`` or ``7d`` (None, absent: 1h); anything else, the empty string
    too, is an InvalidInput naming ``window``."""
    if text is None:
        return WINDOWS[DEFAULT_WINDOW]
    window = WINDOWS.get(text)
    if window is None:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise InvalidInput(f"unknown window {shown!r}", field="window",
                           hint=f"use one of {', '.join(WINDOWS)}")  # fmt: skip
    return window


def parse_group(text: str | None) -> GroupBy:
    """``endpoint`` (None, absent, too), ``model`` or ``version``; anything else, the empty
    string too, is an InvalidInput naming ``by``."""
    if text is None:
        return "endpoint"
    for by in GROUPINGS:
        if text == by:
            return by
    shown = text if len(text) <= 20 else text[:20] + "..."
    raise InvalidInput(f"cannot group by {shown!r}", field="by",
                       hint=f"use one of {', '.join(GROUPINGS)}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class LedgerSource:
    """Where the ledger is (a SQLite file or a postgresql:// URL); None: the ledger is off."""

    location: str | Path | None
    password_env: str | None = None


def ledger_document(
    source: LedgerSource,
    window: Window,
    *,
    now: float | None = None,
    by: GroupBy = "endpoint",
    budgets: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The ledger's part of the document for the window ending now (blocking: run in a thread).

    ``budgets``: each key's ``budget_usd_day``, shown against what it spent today (UTC). A
    ledger that is off or not written yet reads as an empty one: the same document, all zeros.
    """
    now = time.time() if now is None else now
    since = now - window.span_s
    location = source.location
    postgres = location is not None and is_postgres_url(location)
    if location is not None and (postgres or Path(location).is_file()):
        with open_reader(location, password_env=source.password_env) as db:
            begin_snapshot(db, postgres=postgres)
            stats = window_stats(db, since, now, window.bucket_s, now=now, by=by)
    else:
        empty = sqlite3.connect(":memory:")
        try:
            ensure_schema(empty)
            stats = window_stats(empty, since, now, window.bucket_s, now=now, by=by)
        finally:
            empty.close()
    document = {
        "window": window.name,
        "since": since,
        "until": now,
        "bucket_s": window.bucket_s,
        "ledger": location is not None,
        **stats.document(),
    }
    spent = stats.spent_today_by_key
    document["budgets"] = [
        {
            "key": key,
            "spent_usd": spent.get(key, 0.0),
            "budget_usd_day": limit,
            "share": spent.get(key, 0.0) / limit if limit > 0 else 0.0,
        }
        for key, limit in sorted((budgets or {}).items())
    ]
    return document


class StatsSource:
    """Answers ``/dashboard/stats``: the ledger's part, computed in a worker thread and reused
    for ``min_interval_s``, or ``reuse_factor`` times as long as it took (so a slow 7-day query
    on a large ledger keeps a thread busy a tenth of the time at most), merged with the live
    part read on the loop at every poll. ``budgets`` is called in that thread too (it may read
    the key store)."""

    def __init__(
        self,
        ledger: LedgerSource,
        *,
        live: Callable[[], dict[str, Any]],
        budgets: Callable[[], Mapping[str, float]] = dict,
        min_interval_s: float = 1.0,
        reuse_factor: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.live = live
        self.budgets = budgets
        self.min_interval_s = min_interval_s
        self.reuse_factor = reuse_factor
        self.clock = clock
        self._cached: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def document(self, window: Window, by: GroupBy = "endpoint") -> dict[str, Any]:
        key = (window.name, by)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # pollers of one window wait for one query, not one each
            cached = self._cached.get(key)
            if cached is None or self.clock() >= cached[0]:
                started = self.clock()
                ledger = await asyncio.to_thread(self._ledger_part, window, by)
                took = self.clock() - started
                fresh_until = started + max(self.min_interval_s, self.reuse_factor * took)
                cached = self._cached[key] = (fresh_until, ledger)
        return {**cached[1], "live": self.live()}

    def _ledger_part(self, window: Window, by: GroupBy) -> dict[str, Any]:
        """In a worker thread: the keys' budgets (a key store read) and the ledger's queries."""
        return ledger_document(self.ledger, window, by=by, budgets=self.budgets())


__all__ = [
    "DEFAULT_WINDOW",
    "WINDOWS",
    "LedgerSource",
    "StatsSource",
    "Window",
    "ledger_document",
    "parse_group",
    "parse_window",
]
