"""What a server under test says of itself: a gauge on /metrics, its ledger's statuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx


def gauge(url: str, name: str) -> float:
    """An unlabelled series' value on ``url``/metrics (0 while absent)."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def ledger_statuses(path: Path) -> list[int]:
    """Every request row's status, oldest first."""
    with sqlite3.connect(path) as db:
        return [status for (status,) in db.execute("SELECT status FROM requests ORDER BY ts")]


__all__ = ["gauge", "ledger_statuses"]
