"""A ledger that cannot die silently (issue 14, findings 4 and 9).

The writer survives rows SQLite cannot store and bugs in itself; a ledger file that takes no
writes turns readiness off, shows on ``/metrics`` and in the log with true counts, and comes back
once the file does; ``frugal validate`` and ``frugal serve`` refuse a ledger or keys path they
could not open, writing nothing. Real SQLite files, real ``frugal serve`` processes.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from frugal.accounting import LedgerRow, SqliteLedger
from frugal.accounting.ledger_health import UNHEALTHY_AFTER_FAILURES
from frugal.cli import main
from frugal.optimize import free_port
from tests.conftest import ServerProcess, digits_config, write_config
from tests.waiting import eventually


def request_row(i: int, **changes: Any) -> LedgerRow:
    row = LedgerRow(ts=1_700_000_000.0 + i, request_id=f"r{i}", endpoint="digits",
                    model="digits", version="1", items=1, batch_size=1.0, queue_ms=0.1,
                    compute_ms=0.2, latency_ms=0.5, cost_usd=1e-7, status=200)  # fmt: skip
    return replace(row, **changes)


def request_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [r[0] for r in db.execute("SELECT request_id FROM requests ORDER BY rowid")]


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    # A flush interval longer than any test: the writer commits only when a test flushes, so
    # each flush is one commit and the tests read a settled state.
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=600_000, heartbeat_s=300)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    yield ledger
    ledger.close()


# ---- bad rows ---------------------------------------------------------------------------------


def test_a_row_sqlite_cannot_store_is_rejected_alone_and_the_writer_goes_on(
    ledger: SqliteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    """A token count of 2**63 and a NULL batch size are skipped, counted and logged; every
    other row, before and after them, is written."""
    caplog.set_level(logging.ERROR, logger="frugal.ledger")
    ledger.record(request_row(0))
    ledger.record(request_row(1, tokens=2**63))  # over SQLite's INTEGER: OverflowError
    ledger.record(request_row(2))
    ledger.flush_sync(timeout_s=10)
    for i in range(3, 6):
        ledger.record(request_row(i))
    ledger.flush_sync(timeout_s=10)
    assert request_ids(ledger.path) == ["r0", "r2", "r3", "r4", "r5"]
    stats = ledger.stats()
    assert (stats.written["requests"], stats.rejected["requests"], stats.lost["requests"]) == (
        5, 1, 0,
    )  # fmt: skip
    assert ledger.healthy
    [line] = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert "'r1'" in line and "too large" in line and "1 row(s) rejected since start" in line


def test_a_bad_batch_row_is_rejected_alone(ledger: SqliteLedger) -> None:
    """A batch row that breaks a NOT NULL column is rejected; the request rows with it go in."""
    from frugal.accounting import BatchRow

    good = BatchRow(ts=1.0, model="digits", version="1", size=4, reason="full", busy_s=0.01,
                    cost_usd=1e-6, queue_ms_mean=1.0, queue_ms_max=2.0, failed=0)  # fmt: skip
    ledger.record_batch(replace(good, reason=None))  # type: ignore[arg-type]
    ledger.record_batch(good)
    ledger.record(request_row(0))
    ledger.flush_sync(timeout_s=10)
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (1,)
    assert request_ids(ledger.path) == ["r0"]
    stats = ledger.stats()
    assert stats.rejected == {"requests": 0, "batches": 1, "payloads": 0}
    assert stats.written == {"requests": 1, "batches": 1, "payloads": 0}


def test_a_bug_in_the_writer_is_logged_marks_it_unhealthy_and_it_goes_on(
    ledger: SqliteLedger, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception the writer did not expect is logged with its traceback, the rows of that
    round are counted lost, readiness drops, and the next round writes as before."""
    caplog.set_level(logging.ERROR, logger="frugal.ledger")
    ledger.record(request_row(0))
    # No public call queues a malformed entry; this one stands for any bug in the writer's loop.
    ledger._queue.put(("overhead", ()))
    ledger.flush_sync(timeout_s=10)
    assert not ledger.healthy
    assert ledger.stats().lost["requests"] == 1
    crash = [r for r in caplog.records if "the writer failed" in r.getMessage()]
    assert crash and crash[0].exc_info is not None
    assert any("1 row(s) lost" in r.getMessage() for r in caplog.records)
    ledger.record(request_row(1))
    ledger.flush_sync(timeout_s=10)
    assert request_ids(ledger.path) == ["r1"]
    assert ledger.healthy


# ---- a file that takes no writes ---------------------------------------------------------------


def test_a_deleted_ledger_holds_rows_turns_unhealthy_and_recovers_when_it_is_back(
    ledger: SqliteLedger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With its file moved away, commits fail (SQLite alone would write into the unlinked
    file): rows are held, the ledger turns unhealthy after a few failed commits; with the file
    back, the held rows are written and it is healthy again. Nothing is lost."""
    caplog.set_level(logging.WARNING, logger="frugal.ledger")
    ledger.record(request_row(0))
    ledger.flush_sync(timeout_s=10)
    moved = tmp_path / "moved.db"
    ledger.path.rename(moved)
    for i in range(1, 6):
        ledger.record(request_row(i))
    for _ in range(UNHEALTHY_AFTER_FAILURES):
        ledger.flush_sync(timeout_s=10)
    stats = ledger.stats()
    assert not ledger.healthy and not stats.healthy
    assert (stats.held, stats.lost["requests"], stats.written["requests"]) == (5, 0, 1)
    failures = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(failures) == 1  # the first failure, then one line per LOG_EVERY_S
    assert "cannot write 5 row(s)" in failures[0] and "was deleted" in failures[0]
    moved.rename(ledger.path)
    ledger.flush_sync(timeout_s=10)
    assert ledger.healthy
    assert request_ids(ledger.path) == [f"r{i}" for i in range(6)]
    assert ledger.stats().written["requests"] == 6
    assert any("writing again" in r.getMessage() for r in caplog.records)


def test_rows_past_the_hold_are_lost_oldest_first_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_held_rows the oldest held rows are dropped; each loss is in the counts and the
    log, and closing with rows still held counts them too."""
    caplog.set_level(logging.ERROR, logger="frugal.ledger")
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=600_000, heartbeat_s=300,
                          max_held_rows=3)  # fmt: skip
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    try:
        (tmp_path / "ledger.db").rename(tmp_path / "away.db")
        for i in range(5):
            ledger.record(request_row(i))
        ledger.flush_sync(timeout_s=10)
        stats = ledger.stats()
        assert (stats.held, stats.lost["requests"]) == (3, 2)
        assert "3 row(s) held to retry, 2 lost now, 2 lost since start" in caplog.text
        (tmp_path / "away.db").rename(tmp_path / "ledger.db")
        ledger.flush_sync(timeout_s=10)
        assert request_ids(ledger.path) == ["r2", "r3", "r4"]
        (tmp_path / "ledger.db").unlink()
        ledger.record(request_row(5))
    finally:
        ledger.close()
    assert ledger.stats().lost["requests"] == 3
    assert "1 row(s) lost: the ledger closed while its file took no writes; 3 lost" in caplog.text


def test_a_ledger_that_cannot_open_its_file_says_which_field(tmp_path: Path) -> None:
    """open() on a folder raises a ConfigError naming ledger.path, not a sqlite3 traceback."""
    from frugal.errors import ConfigError

    (tmp_path / "folder.db").mkdir()
    with pytest.raises(ConfigError, match=r"ledger\.path: cannot open the ledger"):
        SqliteLedger(tmp_path / "folder.db").open(
            instance="custom", price_usd_per_hour=1.0, slots=1
        )


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of ``name`` (a counter's ``_total``) on the server's /metrics."""
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no {name}{labels} on /metrics")


def predict(url: str, x: np.ndarray) -> int:
    return httpx.post(f"{url}/v1/endpoints/digits/predict",
                      json={"instances": [x.tolist()]}, timeout=30).status_code  # fmt: skip


def ready(url: str) -> int:
    return httpx.get(f"{url}/v2/health/ready", timeout=10).status_code


def test_a_server_whose_ledger_file_is_gone_turns_unready_and_says_what_it_lost(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """`frugal serve` with its ledger folder deleted: answers still go out, readiness turns 503,
    /metrics shows healthy 0 and the rows held, and on SIGTERM the log counts every row lost."""
    folder = tmp_path / "data"
    config = digits_config(digits_model_file, tmp_path,
                           ledger={"path": str(folder / "ledger.db"), "flush_interval_ms": 20,
                                   "cost_interval_ms": 20})  # fmt: skip
    x, _ = digits
    with ServerProcess(write_config(tmp_path, config), "--log-level", "warning") as server:
        assert [predict(server.url, x[i]) for i in range(3)] == [200] * 3
        eventually(lambda: metric(server.url, "frugal_ledger_rows_written_total",
                                  table="requests") == 3, "3 request rows written")  # fmt: skip
        assert metric(server.url, "frugal_ledger_healthy") == 1.0
        for path in sorted(folder.iterdir()):
            path.unlink()
        folder.rmdir()
        assert [predict(server.url, x[i]) for i in range(3, 10)] == [200] * 7
        eventually(lambda: ready(server.url) == 503, "readiness to turn off")
        assert metric(server.url, "frugal_ledger_healthy") == 0.0
        held = metric(server.url, "frugal_ledger_rows_held")
        assert held >= 7  # the 7 request rows, and their batches' rows
        assert metric(server.url, "frugal_ledger_rows_lost_total", table="requests") == 0
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
    log = server.log_text()
    assert re.search(r"cannot write \d+ row\(s\) .*was deleted while the server ran", log)
    assert f"{int(held)} row(s) lost: the ledger closed while its file took no writes" in log
    assert "Traceback" not in log


def test_a_server_whose_ledger_comes_back_is_ready_again_and_lost_nothing(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """The ledger file moved away and back: readiness goes off and on, and every answer has its
    row in the end."""
    config = digits_config(digits_model_file, tmp_path)
    path = tmp_path / "ledger.db"
    x, _ = digits
    with ServerProcess(write_config(tmp_path, config), "--log-level", "warning") as server:
        assert [predict(server.url, x[i]) for i in range(3)] == [200] * 3
        path.rename(tmp_path / "away.db")
        assert [predict(server.url, x[i]) for i in range(3, 8)] == [200] * 5
        eventually(lambda: ready(server.url) == 503, "readiness to turn off")
        (tmp_path / "away.db").rename(path)
        eventually(lambda: ready(server.url) == 200, "readiness to come back")
        eventually(lambda: len(request_ids(path)) == 8, "all 8 rows written")
        assert metric(server.url, "frugal_ledger_rows_lost_total", table="requests") == 0
        assert metric(server.url, "frugal_ledger_healthy") == 1.0


# ---- paths that cannot be served ---------------------------------------------------------------


def bad_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Name -> (a database path `frugal serve` cannot open, what the error says)."""
    (tmp_path / "a-folder.db").mkdir()
    (tmp_path / "plain-file").write_text("not a folder")
    (tmp_path / "notes.txt").write_text("these are notes, not a database\n")
    return {
        "folder": (tmp_path / "a-folder.db", "is a folder, not a file"),
        "under a file": (
            tmp_path / "plain-file" / "sub" / "ledger.db",
            f"{tmp_path / 'plain-file'} is a file, so no folder can be made there",
        ),
        "not sqlite": (tmp_path / "notes.txt", "is not a SQLite database"),
    }


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if "serve-" not in p.name}


@pytest.mark.parametrize("case", ["folder", "under a file", "not sqlite"])
@pytest.mark.parametrize("field", ["ledger.path", "auth.keys"])
def test_validate_refuses_a_database_path_serve_could_not_open_and_writes_nothing(
    tmp_path: Path, digits_model_file: Path, case: str, field: str
) -> None:
    """`frugal validate` exits 2 naming the field and the file; no file or folder appears."""
    bad, says = bad_paths(tmp_path)[case]
    config = digits_config(digits_model_file, tmp_path)
    if field == "ledger.path":
        config["ledger"]["path"] = str(bad)
    else:
        config["auth"] = {"keys": str(bad)}
    path = write_config(tmp_path, config)
    before = files_under(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{field}: {bad}: {says}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert files_under(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_validate_refuses_a_ledger_in_a_read_only_folder(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """A folder this user cannot write: SQLite could not make its journal files there."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        config = digits_config(digits_model_file, tmp_path,
                               ledger={"path": str(folder / "ledger.db")})  # fmt: skip
        result = CliRunner().invoke(main, ["validate", str(write_config(tmp_path, config))])
        assert result.exit_code == 2
        assert f"the folder {folder} is not writable" in result.output
    finally:
        folder.chmod(0o755)


def test_validate_creates_nothing_for_a_ledger_in_folders_to_be_made(
    tmp_path: Path, digits_model_file: Path
) -> None:
    """A ledger in folders that do not exist yet is fine (serve makes them); validate makes
    none of them."""
    ledger = tmp_path / "new" / "deeper" / "ledger.db"
    config = digits_config(digits_model_file, tmp_path, ledger={"path": str(ledger)})
    result = CliRunner().invoke(main, ["validate", str(write_config(tmp_path, config))])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", ["folder", "under a file", "not sqlite"])
def test_serve_refuses_a_bad_ledger_path_with_exit_2_and_no_traceback(
    tmp_path: Path, digits_model_file: Path, case: str
) -> None:
    """`frugal serve` stops before its port opens, with the same message as validate."""
    bad, says = bad_paths(tmp_path)[case]
    config = digits_config(digits_model_file, tmp_path, ledger={"path": str(bad)})
    path = write_config(tmp_path, config)
    done = subprocess.run(
        [sys.executable, "-m", "frugal", "serve", str(path), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"ledger.path: {bad}: {says}" in done.stderr
    assert "Traceback" not in done.stderr


def test_held_rows_get_their_overhead_share_when_they_are_written(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    """Cost intervals that closed while the rows were held still price them, each its own."""
    moved = tmp_path / "moved.db"
    ledger.path.rename(moved)
    ledger.record(request_row(0, model_usd=1e-7))
    ledger.add_overhead(2e-7)  # r0's interval
    ledger.record(request_row(1, model_usd=1e-7))
    ledger.add_overhead(5e-7)  # r1's interval
    ledger.flush_sync(timeout_s=10)
    assert ledger.stats().held == 2
    moved.rename(ledger.path)
    ledger.flush_sync(timeout_s=10)
    with closing(sqlite3.connect(ledger.path)) as db:
        priced = db.execute("SELECT request_id, overhead_usd, cost_usd FROM requests").fetchall()
    assert priced == [("r0", 2e-7, pytest.approx(3e-7)), ("r1", 5e-7, pytest.approx(6e-7))]
