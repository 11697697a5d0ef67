"""What one /dashboard/stats query costs on a large ledger, per window.

Writes a synthetic SQLite ledger (``--rows`` request rows and a batch row per 4 requests, spread
evenly over 7 days, one run) and times ``ledger_document`` for each window, as the server runs it
in its worker thread (the server then reuses the answer for a second).

    python bench/dashboard_stats.py --rows 1000000
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from frugal.accounting.ledger_schema import ensure_schema, insert_many
from frugal.observability import WINDOWS, LedgerSource, ledger_document


def write_ledger(path: Path, rows: int, now: float) -> None:
    rng = np.random.default_rng(0)
    since = now - 7 * 86400
    db = sqlite3.connect(path)
    ensure_schema(db)
    db.execute("INSERT INTO runs VALUES ('r', ?, NULL, 'c7i.large', 0.089, 2, 1, ?, ?)",
               (since, now, since + 5))  # fmt: skip
    ts = np.sort(rng.uniform(since, now, rows))
    endpoints = ("digits", "text", "chat")
    requests = [
        (float(t), "r", f"q{i}", endpoints[i % 3], "m", str(1 + i % 2), 1, 4.0, 0.5, 1.0,
         float(rng.gamma(2, 2)), 2e-7, 200 if i % 50 else 500, "hit" if i % 3 == 0 else "miss",
         0.0, "", 0, "", 0, 0, 1e-7, 1e-7, "")
        for i, t in enumerate(ts)
    ]  # fmt: skip
    insert_many(db, "requests", requests)
    batches = [(float(t), "r", "m", "1", 4, "full", 0.001, 1e-7, 0.5, 1.0, 0, None, None)
               for t in ts[::4]]  # fmt: skip
    insert_many(db, "batches", batches)
    db.commit()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        write_ledger(path, args.rows, now)
        for window in WINDOWS.values():
            started = time.perf_counter()
            doc = ledger_document(LedgerSource(path), window, now=now)
            took = time.perf_counter() - started
            print(f"{window.name:>4}: {doc['totals']['requests']:>9,} rows in the window, "
                  f"{1000 * took:8.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
