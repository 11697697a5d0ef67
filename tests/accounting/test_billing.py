"""Runs are billed from their start (before models load) to their end: stop, else last heartbeat."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.accounting import SqliteLedger, build_report
from frugal.accounting.billing import run_end
from frugal.accounting.retention import SILENT_S, prune
from frugal.config import parse_config
from frugal.errors import ConfigError
from tests.accounting.test_ledger import write_old_ledger
from tests.accounting.test_report import assert_parts_add_up, request_row
from tests.conftest import ServerProcess, digits_config, write_config
from tests.waiting import eventually

PRICE = 3.6  # $/h: a dollar per 1,000 s
USD_PER_S = PRICE / 3600


def run_row(path: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        (row,) = db.execute("SELECT * FROM runs").fetchall()
        return dict(row)


def set_run(path: Path, **values: float | None) -> None:
    columns = ", ".join(f"{name} = ?" for name in values)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"UPDATE runs SET {columns}", tuple(values.values()))


def test_run_end_prefers_stop_then_heartbeat_then_last_request() -> None:
    """The end is the stop, else the last heartbeat, else (older files) the last request."""
    assert run_end(100.0, 130.0, 120.0, 110.0) == 130.0
    assert run_end(100.0, None, 120.0, 125.0) == 120.0  # heartbeats are written with every row
    assert run_end(100.0, None, None, 110.0) == 110.0
    assert run_end(100.0, None, None, None) == 100.0
    assert run_end(100.0, None, 90.0, None) == 100.0  # never before its own start


def test_a_killed_server_is_billed_to_its_last_heartbeat(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """After kill -9, a real `frugal serve` run is billed from before its model loaded to its
    last heartbeat: past its last request, not to now, and whatever process has its pid."""
    ledger = tmp_path / "ledger.db"
    data = digits_config(digits_model_file, tmp_path)
    data["ledger"] = {"path": str(ledger), "flush_interval_ms": 20, "heartbeat_s": 0.05}
    data["instance"] = {"price_usd_per_hour": PRICE, "slots": 2}
    x, _ = digits
    with ServerProcess(write_config(tmp_path, data)) as server:
        assert server.process is not None
        with httpx.Client(base_url=server.url) as client:
            for i in range(5):
                body = {"instances": x[i : i + 2].tolist()}
                assert client.post("/v1/endpoints/digits/predict", json=body).status_code == 200

        # The server is another process: its heartbeat in the file is the only state to watch.
        # Wait until it has beaten a while past the last request, idle.
        def idle_beat() -> float | None:
            with closing(sqlite3.connect(ledger)) as db:
                ((heartbeat, last),) = db.execute(
                    "SELECT heartbeat, (SELECT MAX(ts) FROM requests) FROM runs"
                ).fetchall()
            return float(last) if last is not None and heartbeat >= last + 0.3 else None

        last = eventually(idle_beat, "a heartbeat 0.3 s past the last request", timeout_s=30,
                          interval_s=0.05)  # fmt: skip
        assert last is not None
        server.process.kill()
        server.process.wait()
    run = run_row(ledger)
    assert run["stopped"] is None and run["started"] < run["ready"] < run["heartbeat"]
    assert run["heartbeat"] >= last + 0.3

    report = build_report(ledger)
    assert report.total.requests == 5
    assert report.billed_usd == pytest.approx(USD_PER_S * (run["heartbeat"] - run["started"]))
    assert report.billed_usd > USD_PER_S * (last - run["started"])  # not only to its last request
    assert report.startup_usd == pytest.approx(USD_PER_S * (run["ready"] - run["started"]))
    assert report.startup_usd > 0
    assert_parts_add_up(report)
    # A live process now holds its pid (this one): the bill does not move to now.
    set_run(ledger, pid=os.getpid())
    again = build_report(ledger)
    assert (again.billed_usd, again.startup_usd) == (report.billed_usd, report.startup_usd)


def test_an_unstopped_run_with_a_live_pid_is_billed_to_its_heartbeat(tmp_path: Path) -> None:
    """A run whose pid is alive (this very process) is billed to its heartbeat, never to now."""
    path = tmp_path / "ledger.db"
    started = time.time() - 3600
    ledger = SqliteLedger(path, flush_interval_ms=60_000, heartbeat_s=60)
    ledger.open(instance="custom", price_usd_per_hour=PRICE, slots=1, started_at=started)
    try:
        ledger.mark_ready(at=started + 6)
        ledger.flush_sync()
        set_run(path, heartbeat=started + 36)
        assert run_row(path)["pid"] == os.getpid()
        report = build_report(path)
        assert report.billed_usd == pytest.approx(USD_PER_S * 36)
        assert report.startup_usd == pytest.approx(USD_PER_S * 6)
    finally:
        ledger.close()


def test_a_run_that_never_became_ready_was_all_start_up(tmp_path: Path) -> None:
    """No ready time (killed while loading or warming up): its whole bill is start-up."""
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    started = time.time() - 100
    ledger.open(instance="custom", price_usd_per_hour=PRICE, slots=1, started_at=started)
    ledger.close()
    set_run(path, stopped=None, heartbeat=started + 20)
    report = build_report(path)
    assert report.billed_usd == pytest.approx(USD_PER_S * 20)
    assert report.startup_usd == report.billed_usd
    assert report.idle_usd == pytest.approx(0.0, abs=1e-15)


def test_a_ledger_from_before_heartbeats_bills_to_the_last_request(tmp_path: Path) -> None:
    """An older ledger's unstopped run is billed to its last request, with no start-up, and its
    rows' whole cost is model share."""
    path = tmp_path / "old.db"
    write_old_ledger(path, started=1_700_000_000.0, last_request=1_700_000_050.0, cost=1e-6)
    report = build_report(path)
    assert report.billed_usd == pytest.approx(USD_PER_S * 50)
    assert report.startup_usd == 0.0
    assert report.model_usd == pytest.approx(2e-6) and report.overhead_usd == 0.0
    assert report.total.model_usd == report.total.cost_usd
    assert_parts_add_up(report)


def test_retention_prunes_killed_runs_by_their_last_heartbeat(tmp_path: Path) -> None:
    """A killed run silent past the cutoff is pruned like a stopped one; a live run, or an old
    one with no heartbeat, is kept."""
    path = tmp_path / "ledger.db"
    now = time.time()
    ids = []
    for _ in range(3):
        ledger = SqliteLedger(path)
        ledger.open(
            instance="custom", price_usd_per_hour=PRICE, slots=1, started_at=now - 90 * 86400
        )
        ledger.record(request_row(0, "e", "m:1", ts=now, items=1, cost=0.0, status=200))
        ledger.close()
        ids.append(ledger.run_id)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE runs SET stopped = NULL")
        db.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (now - 60 * 86400, ids[0]))
        db.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ?", (now - 1, ids[1]))
        db.execute("UPDATE runs SET heartbeat = NULL WHERE run_id = ?", (ids[2],))
    pruned = prune(path, older_than_s=30 * 86400, now=now)
    assert pruned.runs == 1
    with closing(sqlite3.connect(path)) as db:
        left = {run_id for (run_id,) in db.execute("SELECT run_id FROM runs")}
    assert left == {ids[1], ids[2]}
    # Even a cutoff in the last second keeps a run that beat within SILENT_S.
    assert prune(path, older_than_s=0.001, now=now).runs == 0


@pytest.mark.parametrize("heartbeat_s", [0, -1, SILENT_S])
def test_config_refuses_a_heartbeat_retention_could_mistake_for_death(
    digits_model_file: Path, tmp_path: Path, heartbeat_s: float
) -> None:
    """ledger.heartbeat_s must be > 0 and far shorter than the silence that marks a run dead."""
    data = digits_config(digits_model_file, tmp_path)
    data["ledger"]["heartbeat_s"] = heartbeat_s
    with pytest.raises(ConfigError, match=r"ledger\.heartbeat_s"):
        parse_config(data)
    data["ledger"]["heartbeat_s"] = 0.5
    assert parse_config(data).ledger.heartbeat_s == 0.5
