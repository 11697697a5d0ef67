"""The SQLite ledger: every recorded row is committed, off the caller's thread, by any process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from frugal.accounting import BatchRow, LedgerRow, SqliteLedger
from tests.waiting import eventually


def request_row(i: int, *, ts: float = 1_700_000_000.0, cost: float = 1e-6) -> LedgerRow:
    return LedgerRow(
        ts=ts + i,
        request_id=f"r{i}",
        endpoint="digits",
        model="digits",
        version="1",
        items=2,
        batch_size=8.0,
        queue_ms=1.0,
        compute_ms=2.0,
        latency_ms=3.5,
        cost_usd=cost,
        status=200 if i % 7 else 400,
    )


def batch_row(i: int, *, ts: float = 1_700_000_000.0) -> BatchRow:
    return BatchRow(
        ts=ts + i,
        model="digits",
        version="1",
        size=8,
        reason="full",
        busy_s=0.01,
        cost_usd=8e-6,
        queue_ms_mean=1.0,
        queue_ms_max=2.0,
        failed=i % 2,
    )


def query(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, args).fetchall()


def count(path: Path, table: str, run_id: str | None = None) -> int:
    if run_id is None:
        return int(query(path, f"SELECT COUNT(*) FROM {table}")[0][0])
    rows = query(path, f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", run_id)
    return int(rows[0][0])


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=5)
    ledger.open(instance="c7i.large", price_usd_per_hour=0.36, slots=2)
    yield ledger
    ledger.close()


def test_open_writes_the_run(ledger: SqliteLedger) -> None:
    """open() creates the tables and a runs row with the instance, price and slots, not stopped."""
    rows = query(
        ledger.path,
        "SELECT run_id, instance, price_usd_per_hour, slots, stopped, ready FROM runs",
    )
    assert rows == [(ledger.run_id, "c7i.large", 0.36, 2, None, None)]
    ((started, heartbeat),) = query(ledger.path, "SELECT started, heartbeat FROM runs")
    assert started == heartbeat  # started defaults to now, and open() is the first heartbeat
    assert count(ledger.path, "requests") == 0 and count(ledger.path, "batches") == 0


def test_open_takes_the_process_start_and_mark_ready_ends_start_up(tmp_path: Path) -> None:
    """open(started_at=) stamps the start before models loaded; the first mark_ready() wins."""
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=60_000)
    before = time.time()
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1, started_at=before - 12.5)
    try:
        ledger.mark_ready(at=before - 2.0)
        ledger.flush_sync()
        ledger.mark_ready()  # readiness can flip (SIGTERM); start-up ended the first time
        ledger.flush_sync()
        ((started, ready, heartbeat),) = query(
            ledger.path, "SELECT started, ready, heartbeat FROM runs"
        )
        assert (started, ready) == (before - 12.5, before - 2.0)
        assert heartbeat >= before
    finally:
        ledger.close()


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    """A start in the future, a non-positive flush interval or heartbeat, or a negative bound
    on held rows, is refused."""
    ledger = SqliteLedger(tmp_path / "ledger.db")
    with pytest.raises(ValueError, match="after now"):
        ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1, started_at=time.time() + 60)
    assert not (tmp_path / "ledger.db").exists()
    bad: list[dict[str, Any]] = [{"flush_interval_ms": 0.0}, {"heartbeat_s": 0.0},
                                 {"heartbeat_s": -1.0}]  # fmt: skip
    for kwargs in bad:
        with pytest.raises(ValueError, match="must be > 0"):
            SqliteLedger(tmp_path / "ledger.db", **kwargs)
    with pytest.raises(ValueError, match="max_held_rows must be >= 0"):
        SqliteLedger(tmp_path / "ledger.db", max_held_rows=-1)


def test_every_commit_carries_a_heartbeat_no_older_than_its_rows(ledger: SqliteLedger) -> None:
    """A commit of rows stamps the heartbeat too, so it is never older than a committed row."""
    for i in range(20):
        ledger.record(replace(request_row(i), ts=time.time()))
    ledger.flush_sync()
    ((heartbeat,),) = query(ledger.path, "SELECT heartbeat FROM runs")
    ((last,),) = query(ledger.path, "SELECT MAX(ts) FROM requests")
    assert heartbeat >= last


def test_an_idle_run_keeps_beating(tmp_path: Path) -> None:
    """With no rows to write, the writer still stamps a heartbeat once heartbeat_s has passed."""
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=1, heartbeat_s=0.01)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    try:
        ((first,),) = query(ledger.path, "SELECT heartbeat FROM runs")
        beats = {first}

        def three_beats() -> bool:
            ledger.flush_sync()  # a round trip through the writer: no rows, only the timer
            beats.update(row[0] for row in query(ledger.path, "SELECT heartbeat FROM runs"))
            return len(beats) >= 3

        eventually(three_beats, "three heartbeats of an idle writer")
        assert sorted(beats)[-1] > first
    finally:
        ledger.close()


async def test_flushed_rows_are_all_in_the_tables(ledger: SqliteLedger) -> None:
    """Every request and batch row recorded before flush() is in its table, field for field."""
    requests = [request_row(i) for i in range(50)]
    batches = [batch_row(i) for i in range(20)]
    for row in requests:
        ledger.record(row)
    for batch in batches:
        ledger.record_batch(batch)
    await ledger.flush()
    stored = query(ledger.path, "SELECT * FROM requests ORDER BY ts")
    assert [r[:2] for r in stored] == [(row.ts, ledger.run_id) for row in requests]
    assert stored[3][2:] == (
        "r3",
        "digits",
        "digits",
        "1",
        2,
        8.0,
        1.0,
        2.0,
        3.5,
        1e-6,
        200,
        "bypass",
        0.0,
        "",
        0,
        "",
        0,
        0,
        1e-6,  # model_usd: a row that leaves both parts at 0 is all model share
        0.0,
        "",
        "",  # tier
    )
    assert [r[12] for r in stored] == [row.status for row in requests]
    stored_batches = query(ledger.path, "SELECT ts, run_id, size, busy_s, failed FROM batches")
    assert sorted(stored_batches) == [(b.ts, ledger.run_id, 8, 0.01, b.failed) for b in batches]


def ledger_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "frugal-ledger"}


def test_close_stamps_the_run_end_and_flushes(tmp_path: Path) -> None:
    """close() commits what is pending, stamps runs.stopped and stops the writer thread."""
    before = ledger_threads()
    # A long flush interval: close() must not wait it out, nor leave the writer running.
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=60_000)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    ledger.record(request_row(0))
    ledger.close()
    assert ledger_threads() - before == set()
    ((started, stopped),) = query(ledger.path, "SELECT started, stopped FROM runs")
    assert stopped is not None and stopped >= started
    assert count(ledger.path, "requests") == 1
    ledger.close()  # a second close is harmless
    assert query(ledger.path, "SELECT stopped FROM runs") == [(stopped,)]


async def test_record_is_asynchronous_and_loses_nothing(tmp_path: Path) -> None:
    """record() only queues: 10,000 rows are not on disk when it returns, all are after flush."""
    # A long flush interval: the writer commits only when asked to flush.
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=60_000)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    try:
        for i in range(10_000):
            ledger.record(request_row(i))
        assert count(ledger.path, "requests") == 0
        await ledger.flush()
        assert count(ledger.path, "requests") == 10_000
        assert query(ledger.path, "SELECT COUNT(DISTINCT request_id) FROM requests") == [(10_000,)]
    finally:
        ledger.close()


async def test_two_ledgers_on_one_file_both_commit_everything(tmp_path: Path) -> None:
    """Two ledgers writing one file at once (as two server processes do) both commit every row."""
    path = tmp_path / "shared.db"
    first = SqliteLedger(path, flush_interval_ms=1)
    second = SqliteLedger(path, flush_interval_ms=1)
    first.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    second.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    try:
        for i in range(3_000):
            first.record(request_row(i))
            second.record(request_row(i))
            if i % 10 == 0:
                first.record_batch(batch_row(i))
                second.record_batch(batch_row(i))
            if i % 500 == 0:  # interleave commits from both writers
                await asyncio.gather(first.flush(), second.flush())
        await asyncio.gather(first.flush(), second.flush())
    finally:
        await asyncio.gather(asyncio.to_thread(first.close), asyncio.to_thread(second.close))
    assert first.run_id != second.run_id
    for run_id in (first.run_id, second.run_id):
        assert count(path, "requests", run_id) == 3_000
        assert count(path, "batches", run_id) == 300
    assert query(path, "SELECT COUNT(*) FROM runs WHERE stopped IS NOT NULL") == [(2,)]


def test_flush_before_open_returns(tmp_path: Path) -> None:
    """flush and close on a ledger that was never opened return at once and create no file."""
    ledger = SqliteLedger(tmp_path / "never.db")
    ledger.flush_sync()
    ledger.close()
    assert not (tmp_path / "never.db").exists()


def test_split_rows_keep_their_model_and_overhead(ledger: SqliteLedger) -> None:
    """A row that splits its cost keeps both parts and its tier_costs as given."""
    row = replace(request_row(1, cost=3e-6), model_usd=2e-6, overhead_usd=1e-6,
                  tier_costs="small:1=5e-07;large:1=1.5e-06")  # fmt: skip
    ledger.record(row)
    ledger.flush_sync()
    assert query(
        ledger.path, "SELECT cost_usd, model_usd, overhead_usd, tier_costs FROM requests"
    ) == [(3e-6, 2e-6, 1e-6, "small:1=5e-07;large:1=1.5e-06")]


def test_a_ledger_from_before_saved_usd_gains_the_columns(tmp_path: Path) -> None:
    """An older ledger (no saved_usd, key_name, tokens) is migrated on open; old rows read 0."""
    path = tmp_path / "old.db"
    old_requests = """CREATE TABLE requests (
      ts REAL NOT NULL, run_id TEXT NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
      model TEXT NOT NULL, version TEXT NOT NULL, items INTEGER NOT NULL,
      batch_size REAL NOT NULL, queue_ms REAL NOT NULL, compute_ms REAL NOT NULL,
      latency_ms REAL NOT NULL, cost_usd REAL NOT NULL, status INTEGER NOT NULL, cache TEXT)"""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(old_requests)
        db.execute(
            "INSERT INTO requests VALUES (1, 'run0', 'r0', 'e', 'm', '1', 1, 1, 0, 0, 0, 0, 200, "
            "'bypass')"
        )
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    ledger.record(replace(request_row(1), saved_usd=0.25, cache="hit", key="team-a", tokens=7))
    ledger.close()
    stored = query(
        path, "SELECT request_id, cache, saved_usd, key_name, tokens FROM requests ORDER BY ts"
    )
    assert stored == [("r0", "bypass", 0.0, "", 0), ("r1", "hit", 0.25, "team-a", 7)]


# The runs and requests tables as frugal wrote them before heartbeats and the model/overhead split.
OLD_RUNS = """CREATE TABLE runs (
  run_id TEXT PRIMARY KEY, started REAL NOT NULL, stopped REAL, instance TEXT NOT NULL,
  price_usd_per_hour REAL NOT NULL, slots INTEGER NOT NULL, pid INTEGER NOT NULL)"""
OLD_REQUESTS = """CREATE TABLE requests (
  ts REAL NOT NULL, run_id TEXT NOT NULL, request_id TEXT NOT NULL, endpoint TEXT NOT NULL,
  model TEXT NOT NULL, version TEXT NOT NULL, items INTEGER NOT NULL, batch_size REAL NOT NULL,
  queue_ms REAL NOT NULL, compute_ms REAL NOT NULL, latency_ms REAL NOT NULL,
  cost_usd REAL NOT NULL, status INTEGER NOT NULL, cache TEXT NOT NULL DEFAULT 'bypass',
  saved_usd REAL NOT NULL DEFAULT 0, key_name TEXT NOT NULL DEFAULT '',
  tokens INTEGER NOT NULL DEFAULT 0, route TEXT NOT NULL DEFAULT '',
  degraded INTEGER NOT NULL DEFAULT 0, shadow INTEGER NOT NULL DEFAULT 0)"""


def write_old_ledger(path: Path, *, started: float, last_request: float, cost: float) -> None:
    """A ledger as an older frugal left it: one killed run (no stop), two requests."""
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(OLD_RUNS)
        db.execute(OLD_REQUESTS)
        db.execute("INSERT INTO runs VALUES ('old', ?, NULL, 'custom', 3.6, 1, 1)", (started,))
        for i, ts in enumerate((started + 1, last_request)):
            db.execute(
                "INSERT INTO requests (ts, run_id, request_id, endpoint, model, version, items, "
                "batch_size, queue_ms, compute_ms, latency_ms, cost_usd, status) "
                "VALUES (?, 'old', ?, 'e', 'm', '1', 1, 1, 0, 0, 1, ?, 200)",
                (ts, f"r{i}", cost),
            )


def test_a_ledger_from_before_heartbeats_gains_the_columns(tmp_path: Path) -> None:
    """An older ledger gains heartbeat/ready and model/overhead columns: old runs read ready at
    their start (start-up unknown, so 0) and no heartbeat; new runs and rows write as usual."""
    path = tmp_path / "old.db"
    write_old_ledger(path, started=1_700_000_000.0, last_request=1_700_000_050.0, cost=1e-6)
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    ledger.mark_ready()
    ledger.record(replace(request_row(1), model_usd=7e-7, overhead_usd=3e-7))
    ledger.close()
    runs = query(path, "SELECT run_id, started, ready, heartbeat FROM runs ORDER BY started")
    assert runs[0] == ("old", 1_700_000_000.0, 1_700_000_000.0, None)
    assert runs[1][0] == ledger.run_id and None not in runs[1]
    stored = query(
        path, "SELECT request_id, cost_usd, model_usd, overhead_usd, tier_costs FROM requests"
    )
    assert stored == [
        ("r0", 1e-6, 0.0, 0.0, ""),  # read as all model share by the report
        ("r1", 1e-6, 0.0, 0.0, ""),
        ("r1", 1e-6, 7e-7, 3e-7, ""),
    ]


async def test_each_cost_interval_s_rows_gain_its_overhead_share(tmp_path: Path) -> None:
    """add_overhead gives every row recorded since the last call (shadow copies aside) the
    share, keeping cost = model + overhead; rows after it wait for the next interval's."""
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=5)
    ledger.open(instance="test", price_usd_per_hour=1.0, slots=1)
    for i in range(3):
        ledger.record(replace(request_row(i, cost=2e-6), model_usd=2e-6))
    ledger.record(replace(request_row(3, cost=5e-6), model_usd=5e-6, shadow=True))
    ledger.add_overhead(1e-6)
    await ledger.flush()  # the marker and the rows before it in one commit ...
    ledger.record(replace(request_row(4, cost=2e-6), model_usd=2e-6))
    ledger.add_overhead(0.0)  # ... or in separate ones
    ledger.record(replace(request_row(5, cost=2e-6), model_usd=2e-6))
    await ledger.flush()
    ledger.add_overhead(4e-6)
    ledger.close()
    with closing(sqlite3.connect(ledger.path)) as db:
        got = db.execute(
            "SELECT cost_usd, model_usd, overhead_usd, shadow FROM requests ORDER BY request_id"
        ).fetchall()
    assert got[:3] == [(pytest.approx(3e-6), pytest.approx(2e-6), pytest.approx(1e-6), 0)] * 3
    assert got[3] == (pytest.approx(5e-6), pytest.approx(5e-6), 0.0, 1)
    assert got[4] == (pytest.approx(2e-6), pytest.approx(2e-6), 0.0, 0)
    assert got[5] == (pytest.approx(6e-6), pytest.approx(2e-6), pytest.approx(4e-6), 0)
