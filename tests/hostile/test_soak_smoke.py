"""bench/soak.py end to end for a few seconds: a real server, Redis, load and report.

The soak's figures are the server's to meet (bench/README.md); these tests only check that the
bench runs, reports every figure and target, and refuses bad input with exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "bench" / "soak.py"
RUN_TIMEOUT_S = 300  # server start-up and a 3 s load on a busy 2-core machine, with room

PHASE_FIELDS = {
    "multiplier", "rate_per_s", "seconds", "sent", "sent_per_s", "status", "other_status",
    "errors", "admitted", "admitted_p50_ms", "admitted_p99_ms", "cache_hits", "refusals", "r503",
    "r503_retry_after_share", "r503_p50_ms", "r503_p99_ms", "r504_p50_ms",
    "quick_503_share_of_refusals",
    "send_lag_p50_ms", "send_lag_p99_ms", "send_lag_max_ms", "connection_wait_p99_ms",
    "connect_p99_ms",
}  # fmt: skip
REPORT_FIELDS = {
    "started", "machine", "commit", "command", "server", "capacity", "hot_share", "hot_rows",
    "client_timeout_s", "phases", "generator", "server_cpu_s", "health", "slow", "slow_clients",
    "redis_restart", "ledger", "rss_mib", "shutdown_s", "targets", "warnings",
}  # fmt: skip
SECTIONS = [
    "## Load", "## Health probes", "## Slow clients", "## Redis restart", "## Ledger and memory",
    "## Targets (issue 14)",
]  # fmt: skip


def run_soak(*args: str, timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, str(SOAK), *args],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout_s,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_soak_runs_end_to_end_and_reports_every_figure(tmp_path: Path) -> None:
    """A 3 s soak gives a report with every phase figure, section and target, in both forms."""
    out, data = tmp_path / "soak.md", tmp_path / "soak.json"
    # Slow bodies short enough to finish (300 bytes, one every 5 ms): whatever a server does with
    # slow clients, some get answered, and that path of the report runs too.
    done = run_soak(
        "--seconds", "3", "--capacity-seconds", "1", "--slow-clients", "3",
        "--slow-body-bytes", "300", "--slow-interval-s", "0.005",
        "--redis-down-s", "0.2", "--out", str(out), "--json", str(data),
    )  # fmt: skip
    # 0: every target met; 1: some missed (today's server misses several); never 2 or a crash.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert out.read_text() == done.stdout
    for section in SECTIONS:
        assert section in done.stdout
    report: dict[str, Any] = json.loads(data.read_text())
    assert set(report) == REPORT_FIELDS
    assert [p["multiplier"] for p in report["phases"]] == [2.0, 10.0]
    for phase in report["phases"]:
        assert set(phase) == PHASE_FIELDS
        # every request sent has a status or a reason it has none
        assert sum(phase["status"].values()) + sum(phase["errors"].values()) == phase["sent"]
        assert phase["sent"] > 0
    assert report["capacity"]["req_per_s"] > 0
    assert report["redis_restart"] is not None and report["redis_restart"]["phase"] == 10.0
    assert set(report["health"]) == {"/v2/health/live", "/v2/health/ready", "all"}
    assert report["health"]["all"]["probes"] > 0
    slow = report["slow_clients"]
    assert slow["requests"] >= 3
    assert slow["outcomes"].get("answered", 0) == sum(slow["status"].values()) >= 1
    ledger = report["ledger"]
    assert ledger["answers"] == sum(ledger["answers_by_status"].values()) > 0
    assert ledger["rows"] == sum(ledger["rows_by_status"].values())
    matched = ("answers_with_one_row", "answers_without_row", "answers_with_several_rows",
               "answers_with_other_status_row")  # fmt: skip
    assert sum(ledger[k] for k in matched) == ledger["answers"]  # each answer in one class
    assert {"rows_for_abandoned", "rows_not_ours"} <= set(ledger)
    assert report["rss_mib"]["before"] > 0 and report["rss_mib"]["after"] > 0
    assert len(report["rss_mib"]["by_phase"]) == 2
    targets = report["targets"]
    assert len(targets) == 5
    assert all(isinstance(t["pass"], bool) for t in targets)
    assert (done.returncode == 0) == all(t["pass"] for t in targets)
    for t in targets:
        assert t["target"] in done.stdout


def test_soak_without_redis_server_is_refused_with_exit_2(tmp_path: Path) -> None:
    """No redis-server binary: exit 2 and a message saying how to get one, before anything runs."""
    done = run_soak("--redis-server", str(tmp_path / "no-redis-server"), timeout_s=60)
    assert done.returncode == 2
    assert "redis-server not found" in done.stderr
    assert "apt-get install redis-server" in done.stderr
    assert "Traceback" not in done.stderr


def test_soak_refuses_a_set_that_makes_the_config_invalid() -> None:
    """A --set the server's config loader rejects: exit 2 naming the field, no server started."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    done = run_soak("--set", "models.0.batching.max_queue=0", timeout_s=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "max_queue" in done.stderr
    assert "Traceback" not in done.stderr
