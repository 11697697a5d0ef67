"""insert_many cuts a batch into a few fixed statement sizes (ledger_schema.INSERT_SIZES), and
the writer settles a cost interval's overhead on its own run's rows only."""

from __future__ import annotations

import queue
import re
import sqlite3
import threading
from pathlib import Path

from frugal.accounting.ledger_health import LedgerHealth
from frugal.accounting.ledger_schema import INSERT_SIZES, connect, ensure_schema, insert_many
from frugal.accounting.ledger_writer import Entry, LedgerWriter


def test_every_batch_size_inserts_every_row_in_order_with_a_few_statements() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    sizes_compiled: set[int] = set()

    def seen(sql: str) -> None:  # the statement as run: its rows are its "(...)" groups
        if sql.startswith("INSERT"):
            sizes_compiled.add(sql.split(" VALUES ")[1].count("("))

    db.set_trace_callback(seen)
    expected: list[tuple[int, str]] = []
    for size in (*range(0, 70), 255, 256, 257, 500, 1000, 1337):
        rows = [(len(expected) + i, f"row {len(expected) + i}") for i in range(size)]
        last = insert_many(db, "t", list(rows))
        expected += rows
        assert last == (len(expected) if rows else None)
    assert db.execute("SELECT a, b FROM t ORDER BY rowid").fetchall() == expected
    # Whatever the batch sizes, only the fixed sizes were ever compiled (sqlite3 caches each
    # distinct statement: one per batch size held ~40 MB after a minute of overload).
    assert sizes_compiled <= set(INSERT_SIZES)


def request_row(run_id: str, i: int, model_usd: float) -> tuple[object, ...]:
    """A requests row as QueuedLedger.record queues it (overhead 0 until its interval closes)."""
    return (1.0 + i, run_id, f"r{i}", "digits", "digits", "1", 1, 1.0, 0.1, 0.2, 0.5, model_usd,
            200, "bypass", 0.0, "", 0, "", 0, 0, model_usd, 0.0, "", "")  # fmt: skip


def test_a_run_settles_its_overhead_from_the_table_end_not_from_every_earlier_row(
    tmp_path: Path,
) -> None:
    """A new run's first cost interval updates only rows after the table's last rowid when it
    started: from rowid 0 it walked every earlier run's rows (seconds on a big ledger, at every
    start). Its own rows get their share; the earlier run's rows keep theirs."""
    path = tmp_path / "ledger.db"
    db = connect(path)
    ensure_schema(db)
    earlier = [request_row("earlier", i, 1e-6) for i in range(500)]
    insert_many(db, "requests", earlier)
    db.commit()
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    entries: queue.SimpleQueue[Entry] = queue.SimpleQueue()
    wake = threading.Event()
    writer = LedgerWriter(db, path, "now", entries, wake, LedgerHealth(str(path)),
                          flush_interval_s=0.01, heartbeat_s=60.0)  # fmt: skip
    for i in range(3):
        entries.put(("requests", request_row("now", i, 2e-6)))
    entries.put(("overhead", (5e-7,)))  # the interval closes: a share for the 3 rows before it
    entries.put(("requests", request_row("now", 3, 2e-6)))  # the next interval's: no share yet
    entries.put(("stop", ()))
    wake.set()
    writer.run()  # one round: drains, commits, stops

    updates = [s for s in statements if s.startswith("UPDATE requests")]
    assert len(updates) == 1
    assert re.search(r"rowid > (\d+) ", updates[0]).group(1) == "500"  # type: ignore[union-attr]
    check = sqlite3.connect(path)
    rows = check.execute(
        "SELECT run_id, overhead_usd, cost_usd FROM requests ORDER BY rowid"
    ).fetchall()
    assert rows[:500] == [("earlier", 0.0, 1e-6)] * 500
    assert rows[500:503] == [("now", 5e-7, 2e-6 + 5e-7)] * 3
    assert rows[503] == ("now", 0.0, 2e-6)
