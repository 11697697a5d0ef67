"""The ledger's ``tier`` column (server.priority): written, migrated into older files, and in
PostgreSQL, created or added to a database an older frugal made."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from frugal.accounting import SqliteLedger, build_report
from tests.accounting.test_ledger import OLD_REQUESTS, OLD_RUNS, query, request_row
from tests.accounting.test_ledger_postgres import opened
from tests.accounting.test_ledger_postgres import query as pg_query

# requests as frugal wrote it just before the tier column (tier_costs was the last one added).
BEFORE_TIER = OLD_REQUESTS.replace(
    "shadow INTEGER NOT NULL DEFAULT 0)",
    "shadow INTEGER NOT NULL DEFAULT 0, model_usd REAL NOT NULL DEFAULT 0, "
    "overhead_usd REAL NOT NULL DEFAULT 0, tier_costs TEXT NOT NULL DEFAULT '')",
)


def test_a_ledger_from_before_tiers_gains_the_column(tmp_path: Path) -> None:
    """An older file gains ``tier`` on open: its rows read '' ((none) by tier), new rows carry
    the caller's tier, and the report groups them."""
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(OLD_RUNS)
        db.execute(BEFORE_TIER)
        db.execute(
            "INSERT INTO requests (ts, run_id, request_id, endpoint, model, version, items, "
            "batch_size, queue_ms, compute_ms, latency_ms, cost_usd, status) "
            "VALUES (1700000000, 'old', 'r0', 'e', 'm', '1', 1, 1, 0, 0, 1, 1e-6, 200)"
        )
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    ledger.record(replace(request_row(1), tier="premium"))
    ledger.record(replace(request_row(2), tier="free"))
    ledger.close()
    stored = query(path, "SELECT request_id, tier FROM requests ORDER BY ts")
    assert stored == [("r0", ""), ("r1", "premium"), ("r2", "free")]
    by_tier = {r.key: r.requests for r in build_report(path, by="tier").rows}
    assert by_tier == {"(none)": 1, "premium": 1, "free": 1}


def test_postgres_has_the_tier_column_and_adds_it_to_an_older_database(pg_url: str) -> None:
    """A fresh database gets ``tier``; one an older frugal created gains it on the next start,
    its rows reading ''."""
    import psycopg

    with psycopg.connect(pg_url) as db:  # the requests table as an older frugal created it
        db.execute(
            "CREATE TABLE requests (ts DOUBLE PRECISION NOT NULL, run_id TEXT NOT NULL, "
            "request_id TEXT NOT NULL, endpoint TEXT NOT NULL, model TEXT NOT NULL, "
            "version TEXT NOT NULL, items BIGINT NOT NULL, batch_size DOUBLE PRECISION NOT NULL, "
            "queue_ms DOUBLE PRECISION NOT NULL, compute_ms DOUBLE PRECISION NOT NULL, "
            "latency_ms DOUBLE PRECISION NOT NULL, cost_usd DOUBLE PRECISION NOT NULL, "
            "status BIGINT NOT NULL, cache TEXT NOT NULL DEFAULT 'bypass', "
            "saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0, key_name TEXT NOT NULL DEFAULT '', "
            "tokens BIGINT NOT NULL DEFAULT 0, route TEXT NOT NULL DEFAULT '', "
            "degraded BIGINT NOT NULL DEFAULT 0, shadow BIGINT NOT NULL DEFAULT 0, "
            "model_usd DOUBLE PRECISION NOT NULL DEFAULT 0, "
            "overhead_usd DOUBLE PRECISION NOT NULL DEFAULT 0, "
            "tier_costs TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO requests (ts, run_id, request_id, endpoint, model, version, items, "
            "batch_size, queue_ms, compute_ms, latency_ms, cost_usd, status) "
            "VALUES (1, 'old', 'r0', 'e', 'm', '1', 1, 1, 0, 0, 1, 1e-6, 200)"
        )
    ledger = opened(pg_url)
    ledger.record(replace(request_row(1), tier="premium"))
    ledger.flush_sync()
    ledger.close()
    stored = pg_query(pg_url, "SELECT request_id, tier FROM requests ORDER BY ts")
    assert stored == [("r0", ""), ("r1", "premium")]
    by_tier = {r.key: r.requests for r in build_report(pg_url, by="tier").rows}
    assert by_tier == {"(none)": 1, "premium": 1}
