"""Real traffic for the dashboard tests, and the ledger's own numbers to compare the page with."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def send_traffic(url: str, digits: tuple[np.ndarray, np.ndarray], *, requests: int,
                 distinct: int, headers: dict[str, str] | None = None) -> int:  # fmt: skip
    """``requests`` predictions over ``distinct`` digits (the repeats are cache hits), then one
    request with a wrong shape (a 400). Returns how many answers the ledger should hold."""
    x, _ = digits
    with httpx.Client(base_url=url, headers=headers or {}, timeout=30) as client:
        for i in range(requests):
            r = client.post("/v1/endpoints/digits/predict",
                            json={"instances": [x[i % distinct].tolist()]})  # fmt: skip
            assert r.status_code == 200, r.text
        bad = client.post("/v1/endpoints/digits/predict", json={"instances": [[1.0, 2.0]]})
        assert bad.status_code == 400, bad.text
    return requests + 1


@dataclass(frozen=True)
class LedgerTruth:
    """What the ledger file holds for the requests table, read with plain SQL."""

    requests: int
    cost_usd: float
    model_usd: float
    overhead_usd: float
    hits: int
    statuses: dict[int, int]

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.requests


def ledger_truth(path: Path) -> LedgerTruth:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT cost_usd, model_usd, overhead_usd, cache, status FROM requests WHERE shadow = 0"
        ).fetchall()
    statuses: dict[int, int] = {}
    for *_, status in rows:
        statuses[status] = statuses.get(status, 0) + 1
    return LedgerTruth(
        requests=len(rows),
        cost_usd=math.fsum(r[0] for r in rows),
        model_usd=math.fsum(r[1] for r in rows),
        overhead_usd=math.fsum(r[2] for r in rows),
        hits=sum(r[3] in ("hit", "shared") for r in rows),
        statuses=statuses,
    )


def cached_digits_config(config: dict[str, Any]) -> dict[str, Any]:
    """``digits_config`` with a memory cache on the endpoint, so repeats are hits."""
    config["endpoints"][0]["cache"] = {"store": "memory", "ttl_s": 600}
    return config
