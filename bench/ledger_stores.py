"""The ledger's two stores side by side: how fast each writer commits rows, and what the hot
path pays per row (the same queue for both).

    python bench/ledger_stores.py                       # starts a throwaway PostgreSQL cluster
    python bench/ledger_stores.py --rows 50000 --url postgresql://frugal@db:5432/bench

For each store: ``--rows`` request rows are recorded as fast as one thread can (the hot path's
``record``: a tuple on a queue), then ``close`` flushes them; the writer's rate is rows over the
time from the first ``record`` until ``close`` returns. PostgreSQL runs on this machine (Debian's
package, fsync off as in the tests), so its figure is the writer's own cost, not a network's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from frugal.accounting import LedgerRow, QueuedLedger, SqliteLedger


def row(i: int) -> LedgerRow:
    return LedgerRow(ts=time.time(), request_id=f"r{i}", endpoint="digits", model="digits",
                     version="1", items=1, batch_size=8.0, queue_ms=1.0, compute_ms=2.0,
                     latency_ms=3.5, cost_usd=1e-6, status=200)  # fmt: skip


def measure(ledger: QueuedLedger, rows: int) -> tuple[float, float]:
    """(microseconds per record call, rows committed per second)."""
    ledger.open(instance="bench", price_usd_per_hour=0.36, slots=2)
    prepared = [row(i) for i in range(rows)]
    start = time.perf_counter()
    for r in prepared:
        ledger.record(r)
    recorded = time.perf_counter()
    ledger.close()
    done = time.perf_counter()
    lost = sum(ledger.stats().lost.values())
    if ledger.stats().written["requests"] != rows or lost:
        raise SystemExit(f"{ledger.where}: {ledger.stats()}")
    return 1e6 * (recorded - start) / rows, rows / (done - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--url", help="a PostgreSQL database (default: start a local cluster)")
    args = parser.parse_args()
    from frugal.accounting.ledger_postgres import PostgresLedger

    server = None
    url = args.url
    if url is None:
        from tests.pg_server import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL here: apt-get install postgresql, or pass --url")
        server = PostgresServer(bindir)
        url = server.create_database()
    try:
        with tempfile.TemporaryDirectory() as folder:
            stores: list[tuple[str, QueuedLedger]] = [
                ("sqlite", SqliteLedger(Path(folder) / "ledger.db")),
                ("postgres", PostgresLedger(url)),
            ]
            print(f"{args.rows:,} request rows per store")
            print("| store | record, us/row | committed, rows/s |")
            print("| --- | ---: | ---: |")
            for name, ledger in stores:
                per_row_us, rate = measure(ledger, args.rows)
                print(f"| {name} | {per_row_us:.2f} | {rate:,.0f} |")
    finally:
        if server is not None:
            server.remove()


if __name__ == "__main__":
    main()
