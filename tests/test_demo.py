"""`frugal demo`, the README's first command, against a real server process."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from frugal.accounting import build_report
from frugal.cli import main


def test_demo_serves_both_runs_and_prints_the_table(tmp_path: Path) -> None:
    """The demo trains, serves, loads and prints one row per run, and each run has its ledger."""
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
    assert cached.total.cache_hit_ratio > 0.2  # Zipf(1.1) over 597 rows repeats popular ones
