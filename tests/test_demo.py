"""`frugal demo`, the README's first command, against a real server process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import yaml
from click.testing import CliRunner

from frugal.accounting import build_report
from frugal.cli import main


def test_demo_serves_every_run_and_prints_the_table(tmp_path: Path) -> None:
    """The demo trains, calibrates, serves, loads and prints one row per run (batching, large
    only, the calibrated cascade) with its accuracy, and each run has its ledger."""
    result = CliRunner().invoke(
        main, ["demo", "--requests", "300", "--connections", "8", "--workdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "batch ≤ 64 + cache" in result.output and "batch 1" in result.output
    cached = build_report(tmp_path / "ledger-batch64-cache.db")
    on = build_report(tmp_path / "ledger-batch64.db")
    off = build_report(tmp_path / "ledger-batch1.db")
    assert cached.total.requests == on.total.requests == off.total.requests == 300
    assert cached.total.errors == on.total.errors == off.total.errors == 0
    assert off.total.mean_batch_size == 1.0
    assert on.total.mean_batch_size >= 1.0
    assert on.total.cache_hit_ratio == 0.0 and cached.total.saved_usd > 0
    assert cached.total.cache_hit_ratio > 0.2  # Zipf(1.1) over 297 rows repeats popular ones
    large = build_report(tmp_path / "ledger-large.db")
    cascade = build_report(tmp_path / "ledger-cascade.db")
    assert large.total.requests == cascade.total.requests == 300
    assert large.total.errors == cascade.total.errors == 0
    # The cascade's threshold came from calibration on held-out digits: a confidence in (0, 1].
    settings = yaml.safe_load((tmp_path / "frugal-cascade.yaml").read_text())
    route = next(e for e in settings["endpoints"] if e["name"] == "digits-cascade")["route"]
    op, threshold = route["cascade"][0]["accept"]["confidence"].split()
    assert op == ">=" and 0 < float(threshold) <= 1
    with sqlite3.connect(tmp_path / "ledger-cascade.db") as db:
        routes = [r for (r,) in db.execute("SELECT route FROM requests WHERE status = 200")]
    assert len(routes) == 300 and all(r.startswith("digits-small:1*") for r in routes)
    assert "accuracy" in result.output and "cascade vs large only" in result.output
    assert "% of its $ per 1k" in result.output
