"""`frugal audit show | verify` and `frugal ledger prune` on real ledger files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.access import AuditLog
from frugal.accounting import LedgerRow, SqliteLedger
from frugal.cli import main


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    now = time.time()
    for i, (key, age_days) in enumerate((("alice", 45), ("alice", 2), ("bob", 45), ("bob", 0))):
        ledger.record(LedgerRow(ts=now - age_days * 86400, request_id=f"r{i}", endpoint="e",
                                model="m", version="1", items=1, batch_size=1, queue_ms=0,
                                compute_ms=0, latency_ms=1, cost_usd=0.001, status=200,
                                key=key))  # fmt: skip
    ledger.close()
    log = AuditLog(path)
    log.append("cli:ops", "key.create", "alice", role="user")
    log.append("server", "model.load", "m:1", sha256="ab" * 32)
    log.append("cli:ops", "key.revoke", "alice")
    return path


def test_audit_verify_passes_and_prints_the_head(ledger_path: Path) -> None:
    result = invoke("audit", "verify", "--ledger", str(ledger_path))
    assert result.exit_code == 0
    head = AuditLog(ledger_path).entries()[-1].hash
    assert f"audit log intact: 3 rows; head {head}" in result.output


def test_audit_verify_exits_1_naming_an_edited_row(ledger_path: Path) -> None:
    with sqlite3.connect(ledger_path) as db:
        db.execute("UPDATE audit SET target = 'bob' WHERE seq = 3")
    result = invoke("audit", "verify", "--ledger", str(ledger_path))
    assert result.exit_code == 1
    assert "audit log BROKEN at row 3: was edited" in result.output


def test_audit_verify_exits_1_naming_a_deleted_row(ledger_path: Path) -> None:
    with sqlite3.connect(ledger_path) as db:
        db.execute("DELETE FROM audit WHERE seq = 2")
    result = invoke("audit", "verify", "--ledger", str(ledger_path))
    assert result.exit_code == 1 and "row 2 deleted before row 3" in result.output


def test_audit_show_lists_entries(ledger_path: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "show", "--ledger", str(ledger_path)],
                                terminal_width=200)  # fmt: skip
    assert result.exit_code == 0
    for text in ("key.create", "model.load", "key.revoke", "cli:ops", "role=user"):
        assert text in result.output
    recent = invoke("audit", "show", "--ledger", str(ledger_path), "--since", "1h")
    assert recent.exit_code == 0 and "key.revoke" in recent.output


def test_ledger_prune_by_age_then_by_key_and_audits_it(ledger_path: Path) -> None:
    result = invoke("ledger", "prune", "--older-than", "30d", "--ledger", str(ledger_path))
    assert result.exit_code == 0 and "deleted 2 request rows" in result.output
    result = invoke("ledger", "prune", "--key", "alice", "--ledger", str(ledger_path))
    assert result.exit_code == 0 and "deleted 1 request rows" in result.output
    with sqlite3.connect(ledger_path) as db:
        assert db.execute("SELECT request_id, key_name FROM requests").fetchall() == [("r3", "bob")]
    entries = AuditLog(ledger_path).entries()
    assert [(e.action, e.target) for e in entries[-2:]] == [
        ("ledger.prune", "*"),
        ("ledger.prune", "alice"),
    ]
    assert entries[-1].detail["requests"] == 1
    assert AuditLog(ledger_path).verify().ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ledger", "prune"], "give --older-than, --key, or both"),
        (["ledger", "prune", "--older-than", "a month"], "use a duration like 30m"),
        (["ledger", "prune", "--older-than", "30d", "--ledger", "/nope/x.db"], "no ledger here"),
        (["audit", "verify", "--ledger", "/nope/x.db"], "no ledger here yet"),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_ledger_prune_appends_a_keyed_row_and_exports_its_head(
    ledger_path: Path, tmp_path: Path
) -> None:
    """With the config's key and head file, the prune's audit row is keyed and its head kept."""
    key = invoke("audit", "new-key", str(tmp_path / "audit.key"))
    assert key.exit_code == 0 and "mode 600" in key.output
    config = tmp_path / "frugal.yaml"
    config.write_text(yaml.safe_dump({
        "instance": {"price_usd_per_hour": 1},
        "models": [{"name": "m", "runtime": "python", "factory": "pkg.mod:build"}],
        "ledger": {"path": ledger_path.name, "audit_key_file": "audit.key",
                   "audit_head_file": "audit.head"},
    }))  # fmt: skip
    result = invoke("ledger", "prune", "--older-than", "30d", "--config", str(config))
    assert result.exit_code == 0, result.output
    last = AuditLog(ledger_path).entries()[-1]
    assert last.action == "ledger.prune" and last.scheme.startswith("hmac-sha256:")
    assert (tmp_path / "audit.head").read_text() == f"4:{last.hash}\n"
    verified = invoke("audit", "verify", "--config", str(config))
    assert verified.exit_code == 0, verified.output
    assert "1 rows keyed with key" in verified.output and "(and 3 unkeyed rows" in verified.output
    assert "found at row 4 (the head)" in verified.output
