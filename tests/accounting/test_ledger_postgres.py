"""The PostgreSQL ledger against a real server: rows land once, the readers read them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from frugal.accounting import ReportRow, SqliteLedger, build_report
from frugal.accounting.budgets import BudgetBook
from frugal.accounting.ledger import PayloadRow
from frugal.accounting.retention import prune
from tests.accounting.test_ledger import batch_row, request_row
from tests.pg_server import PostgresServer
from tests.waiting import eventually

if TYPE_CHECKING:  # imported where used: without the postgres extra the fixtures skip (or fail
    # in CI) with a message, rather than this module failing to import
    from frugal.accounting.ledger_postgres import PostgresLedger


def query(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as db:
        return db.execute(sql, args).fetchall()


def count(url: str, table: str) -> int:
    return int(query(url, f"SELECT COUNT(*) FROM {table}")[0][0])


def opened(url: str, **options: Any) -> PostgresLedger:
    from frugal.accounting.ledger_postgres import PostgresLedger

    ledger = PostgresLedger(url, flush_interval_ms=options.pop("flush_interval_ms", 5), **options)
    ledger.open(instance="c7i.large", price_usd_per_hour=0.36, slots=2)
    return ledger


@pytest.fixture
def ledger(pg_url: str) -> Iterator[PostgresLedger]:
    ledger = opened(pg_url)
    yield ledger
    ledger.close()


def test_rows_batches_payloads_and_the_run_land(ledger: PostgresLedger, pg_url: str) -> None:
    """Every kind of row the serving path records is in its table after a flush, and the run's
    row is stamped ready, beating, and stopped at close."""
    for i in range(50):
        ledger.record(request_row(i))
    for i in range(5):
        ledger.record_batch(batch_row(i))
    ledger.record_payload(PayloadRow(1.0, "r1", "digits", "", '{"a": 1}', '{"b": 2}', 2e9))
    ledger.mark_ready()
    ledger.flush_sync()
    assert (count(pg_url, "requests"), count(pg_url, "batches"), count(pg_url, "payloads")) == (
        50, 5, 1,
    )  # fmt: skip
    assert query(pg_url, "SELECT COUNT(DISTINCT request_id), MIN(seq), MAX(seq) FROM requests") == [
        (50, 1, 50)
    ]
    ledger.close()
    ((started, ready, heartbeat, stopped, commits),) = query(
        pg_url, "SELECT started, ready, heartbeat, stopped, commits FROM runs WHERE run_id = %s",
        ledger.run_id,
    )  # fmt: skip
    assert started <= ready <= stopped and started <= heartbeat
    assert commits >= 1
    stats = ledger.stats()
    assert stats.written["requests"] == 50 and sum(stats.lost.values()) == 0


def test_overhead_goes_to_the_rows_recorded_before_its_marker(
    ledger: PostgresLedger, pg_url: str
) -> None:
    """A cost interval's overhead share goes to this run's rows recorded since the last one,
    shadow copies aside; rows after the marker wait for the next."""
    ledger.record(request_row(0, cost=1e-6))
    ledger.record(replace(request_row(1, cost=1e-6), shadow=True))
    ledger.add_overhead(5e-7)
    ledger.record(request_row(2, cost=1e-6))
    ledger.flush_sync()
    ledger.add_overhead(2e-7)
    ledger.record(request_row(3, cost=1e-6))
    ledger.flush_sync()
    rows = dict(query(pg_url, "SELECT request_id, overhead_usd FROM requests ORDER BY request_id"))
    assert rows == {"r0": 5e-7, "r1": 0.0, "r2": 2e-7, "r3": 0.0}
    costs = dict(query(pg_url, "SELECT request_id, cost_usd FROM requests"))
    assert costs["r0"] == pytest.approx(1.5e-6) and costs["r2"] == pytest.approx(1.2e-6)


def test_close_flushes_every_row(pg_url: str) -> None:
    """Rows recorded right before close are all committed: nothing accepted is lost."""
    ledger = opened(pg_url, flush_interval_ms=1000)  # the timer never fires before close
    for i in range(5000):
        ledger.record(request_row(i))
    ledger.close()
    assert count(pg_url, "requests") == 5000
    assert not ledger.healthy  # closed


def test_a_bad_row_is_rejected_alone(
    ledger: PostgresLedger, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A value PostgreSQL cannot store skips only its row, counted and logged by request id."""
    ledger.record(request_row(0))
    ledger.record(replace(request_row(1), tokens=2**70))
    ledger.record(replace(request_row(2), route="a\x00b"))
    ledger.record(request_row(3))
    ledger.flush_sync()
    assert sorted(r for (r,) in query(pg_url, "SELECT request_id FROM requests")) == ["r0", "r3"]
    stats = ledger.stats()
    assert stats.rejected["requests"] == 2 and stats.written["requests"] == 2
    assert "request_id 'r1'" in caplog.text and ledger.healthy


def test_several_processes_write_one_database_each_row_once(pg_url: str) -> None:
    """Ledgers of several runs writing at once (worker processes, replicas): every row lands
    once, under its own run."""
    ledgers = [opened(pg_url) for _ in range(3)]

    def write(ledger: PostgresLedger) -> None:
        for i in range(400):
            ledger.record(request_row(i))
        ledger.close()

    threads = [threading.Thread(target=write, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_run = dict(query(pg_url, "SELECT run_id, COUNT(*) FROM requests GROUP BY run_id"))
    assert per_run == {ledger.run_id: 400 for ledger in ledgers}


def test_a_server_that_goes_away_and_comes_back_loses_no_row(
    own_postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """While the server is down the rows are held and readiness is off; once it is back the
    writer reconnects, and every row is in exactly once."""
    url = own_postgres.create_database()
    ledger = opened(url, flush_interval_ms=20)
    try:
        for i in range(100):
            ledger.record(request_row(i))
        ledger.flush_sync()
        own_postgres.stop()
        for i in range(100, 300):
            ledger.record(request_row(i))
        eventually(lambda: not ledger.healthy, "the ledger to turn unhealthy", timeout_s=30)
        assert ledger.stats().held >= 200
        own_postgres.start()
        eventually(lambda: ledger.stats().held == 0 and ledger.healthy,
                   "the held rows to go in", timeout_s=30)  # fmt: skip
        for i in range(300, 310):
            ledger.record(request_row(i))
    finally:
        ledger.close()
    assert query(url, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests") == [(310, 310)]
    assert sum(ledger.stats().lost.values()) == 0
    assert "connected again" in caplog.text


def test_a_connection_cut_between_commits_loses_and_repeats_nothing(
    ledger: PostgresLedger, pg_url: str
) -> None:
    """The writer's connection killed by the server (an admin, a failover): its next commit
    finds it broken, reconnects, checks what went in, and writes each row once."""
    for i in range(20):
        ledger.record(request_row(i))
    ledger.flush_sync()
    writers = "WHERE application_name = 'frugal-ledger' AND pid <> pg_backend_pid()"
    killed = query(pg_url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity {writers}")
    assert killed and all(ok for (ok,) in killed)
    for i in range(20, 40):
        ledger.record(request_row(i))
    eventually(lambda: count(pg_url, "requests") == 40, "the rows after the cut to go in")
    ledger.close()
    assert query(pg_url, "SELECT COUNT(DISTINCT request_id) FROM requests") == [(40,)]
    assert count(pg_url, "requests") == 40


def test_the_report_reads_the_same_figures_as_from_sqlite(pg_url: str, tmp_path: Path) -> None:
    """The same rows in a SQLite file and in PostgreSQL give the same report rows: one query
    per figure, run on either store."""
    sqlite = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=5)
    sqlite.open(instance="c7i.large", price_usd_per_hour=0.36, slots=2)
    postgres = opened(pg_url)
    for ledger in (sqlite, postgres):
        for i in range(30):
            row = request_row(i, cost=1e-6 * (1 + i % 4))
            ledger.record(
                replace(row, endpoint=("a", "b")[i % 2], cache=("hit", "miss")[i % 3 > 0])
            )
        ledger.add_overhead(1e-7)
        for i in range(4):
            ledger.record_batch(batch_row(i))
        ledger.close()
    for by in ("endpoint", "version"):
        from_sqlite = build_report(tmp_path / "ledger.db", by=by)
        from_postgres = build_report(pg_url, by=by)
        # Utilization is over each run's own wall time, which the two ledgers do not share.
        assert unbilled(from_postgres.rows) == unbilled(from_sqlite.rows)
        assert unbilled([from_postgres.total]) == unbilled([from_sqlite.total])
        assert from_postgres.busy_usd == pytest.approx(from_sqlite.busy_usd)


def unbilled(rows: list[ReportRow]) -> list[ReportRow]:
    return [replace(row, utilization=0.0) for row in rows]


def test_budgets_read_other_runs_spend_from_postgres(ledger: PostgresLedger, pg_url: str) -> None:
    """A key's spending today by other runs (another machine's) is read from the database."""
    now = time.time()
    for i in range(3):
        ledger.record(replace(request_row(i, ts=now, cost=2e-6), key="team-a", tokens=10))
    ledger.record(replace(request_row(9, ts=now - 3 * 86400, cost=1.0), key="team-a"))  # old
    ledger.flush_sync()
    other = BudgetBook(pg_url, run_id="another-run")
    other.refresh()
    spent = other.spent("team-a")
    assert spent.usd == pytest.approx(6e-6) and spent.tokens == 30
    own = BudgetBook(pg_url, run_id=ledger.run_id)  # its own rows are counted in memory
    own.refresh()
    assert own.spent("team-a").usd == 0.0


def test_retention_prunes_postgres(ledger: PostgresLedger, pg_url: str) -> None:
    """Rows past the retention age and a key's rows go, on PostgreSQL as on SQLite."""
    now = time.time()
    ledger.record(request_row(0, ts=now - 10 * 86400))
    ledger.record(replace(request_row(1, ts=now), key="leaving"))
    ledger.record(request_row(2, ts=now))
    ledger.record_batch(batch_row(0, ts=now - 10 * 86400))
    ledger.flush_sync()
    pruned = prune(pg_url, older_than_s=86400, key="leaving", now=now)
    assert (pruned.requests, pruned.batches) == (2, 1)
    assert [r for (r,) in query(pg_url, "SELECT request_id FROM requests")] == ["r2"]


def test_a_commit_that_went_in_before_the_connection_dropped_is_not_sent_again(
    pg_url: str,
) -> None:
    """The connection drops after the database committed but before the writer heard so: on
    reconnecting the writer reads the run's commit count back, counts those rows written and
    sends only the newer ones."""
    import queue

    from frugal.accounting.ledger_health import LedgerHealth
    from frugal.accounting.ledger_postgres_schema import connect
    from frugal.accounting.ledger_postgres_writer import PostgresWriter
    from frugal.accounting.ledger_writer import Pending

    ledger = opened(pg_url)  # makes the tables and a run; its own writer stays idle
    health = LedgerHealth(pg_url)
    writer = PostgresWriter(
        connect(pg_url), lambda: connect(pg_url), pg_url, ledger.run_id, queue.SimpleQueue(),
        threading.Event(), health, flush_interval_s=1.0, heartbeat_s=1.0,
    )  # fmt: skip
    sent = Pending()
    sent.rows["requests"] = [_queued(i) for i in range(5)]
    db = writer._connection()
    writer._transaction(db, sent, [], row_by_row=False)  # committed in the database ...
    db.close()  # ... and the answer never arrived
    writer._fail(sent, [], sent.counts(), ConnectionError("cut"), in_doubt=True)
    assert count(pg_url, "requests") == 5 and not health.stats().written["requests"]
    held = writer._held
    held.rows["requests"] += [_queued(i) for i in range(5, 8)]
    writer._held = Pending()
    writer._commit(held, [])
    assert query(pg_url, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests") == [(8, 8)]
    assert health.stats().written["requests"] == 8
    writer._connection().close()
    ledger.close()


def _queued(i: int) -> tuple[object, ...]:
    """A request row as the ledger queues it (ledger.py's record), numbered as the writer does."""
    row = request_row(i)
    return (row.ts, "run", row.request_id, row.endpoint, row.model, row.version, row.items,
            row.batch_size, row.queue_ms, row.compute_ms, row.latency_ms, row.cost_usd,
            row.status, row.cache, row.saved_usd, row.key, row.tokens, row.route,
            int(row.degraded), int(row.shadow), row.cost_usd, row.overhead_usd, row.tier_costs,
            row.tier, i + 1)  # fmt: skip
