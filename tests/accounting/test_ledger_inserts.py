"""insert_many cuts a batch into a few fixed statement sizes (ledger_schema.INSERT_SIZES)."""

from __future__ import annotations

import sqlite3

from frugal.accounting.ledger_schema import INSERT_SIZES, insert_many


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
