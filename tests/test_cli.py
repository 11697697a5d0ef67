"""The `frugal` command: exit codes and messages of validate and report, and its help."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.commands.durations import parse_since
from frugal.config import parse_config
from tests.conftest import digits_config, write_config


def invoke(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)


# ---- validate ------------------------------------------------------------------------------


def test_validate_ok(digits_model_file: Path, tmp_path: Path) -> None:
    """A valid config loads every model and prints ok with the instance price and slots."""
    path = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}: ok" in result.output
    assert "model digits:1 (sklearn) loaded" in result.output
    assert "$0.3600/h over 2 slot(s)" in result.output


def test_validate_lists_upstream_models_without_loading_them(
    digits_model_file: Path, tmp_path: Path
) -> None:
    data = digits_config(digits_model_file, tmp_path)
    data["models"].append({"name": "gpt", "runtime": "openai", "upstream": {
        "base_url": "https://api.example.com/v1", "model": "gpt-4o-mini"}})  # fmt: skip
    result = invoke("validate", str(write_config(tmp_path, data)))
    assert result.exit_code == 0, result.output
    assert "model gpt:1 (openai upstream https://api.example.com/v1)" in result.output


def test_validate_invalid_config_names_the_field(digits_model_file: Path, tmp_path: Path) -> None:
    """An invalid config exits 2 with `error:`, the file and the field path, and no traceback."""
    data = digits_config(digits_model_file, tmp_path, batching={"max_wait_ms": 0})
    path = write_config(tmp_path, data)
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert f"error: {path}: models[0].batching.max_wait_ms:" in result.output
    assert "Traceback" not in result.output


def test_validate_missing_config(tmp_path: Path) -> None:
    """A config file that does not exist exits 2 naming it."""
    result = invoke("validate", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'absent.yaml'}: file not found" in result.output


def test_validate_sha256_mismatch_names_the_file(digits_model_file: Path, tmp_path: Path) -> None:
    """A model file whose bytes changed after its sha256 was written exits 2 naming the file."""
    data = digits_config(digits_model_file, tmp_path)  # sha256 of the original file
    changed = tmp_path / "changed.joblib"
    shutil.copyfile(digits_model_file, changed)
    raw = bytearray(changed.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    changed.write_bytes(bytes(raw))
    data["models"][0]["path"] = str(changed)
    result = invoke("validate", str(write_config(tmp_path, data)))
    assert result.exit_code == 2
    assert "error:" in result.output and "sha256 mismatch" in result.output
    assert str(changed) in result.output
    assert "hint:" in result.output


def test_validate_unknown_instance_type_suggests(digits_model_file: Path, tmp_path: Path) -> None:
    """An unknown instance type exits 2 naming instance.type, with a hint to give a price."""
    data = digits_config(digits_model_file, tmp_path, instance={"type": "no-such-machine"})
    result = invoke("validate", str(write_config(tmp_path, data)))
    assert result.exit_code == 2
    assert "error:" in result.output
    assert "instance.type: unknown instance type 'no-such-machine'" in result.output
    assert "price_usd_per_hour" in result.output


# ---- report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedLedger:
    """A ledger written by a real server run, and its totals read straight from SQLite."""

    path: Path
    requests: int
    errors: int
    cost_usd: float


@pytest.fixture
def served_ledger(serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any) -> Any:
    config = digits_config(digits_model_file, tmp_path)
    server = serve(parse_config(config))
    x, _ = digits
    with httpx.Client(base_url=server.url) as client:
        for i in range(12):
            body = {"instances": x[i : i + 1 + i % 3].tolist()}
            assert client.post("/v1/endpoints/digits/predict", json=body).status_code == 200
        for _ in range(3):
            bad = client.post("/v1/endpoints/digits/predict", content=b"{not json")
            assert bad.status_code == 400
    server.__exit__()  # drain, flush the ledger and stamp the run's end
    path = Path(config["ledger"]["path"])
    with closing(sqlite3.connect(path)) as db:
        requests, errors, cost = db.execute(
            "SELECT COUNT(*), SUM(status >= 400), SUM(cost_usd) FROM requests"
        ).fetchone()
    assert (requests, errors) == (15, 3) and cost > 0
    return ServedLedger(path, requests, errors, cost)


def test_report_json_matches_the_ledger(served_ledger: ServedLedger) -> None:
    """`report --format json` gives the ledger's request, error and cost totals, reconciled."""
    result = invoke("report", "--ledger", str(served_ledger.path), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    *rows, total = out["rows"]
    assert [r["key"] for r in rows] == ["digits"] and total["key"] == "total"
    assert total["requests"] == rows[0]["requests"] == served_ledger.requests
    assert total["errors"] == served_ledger.errors
    assert total["cost_usd"] == pytest.approx(served_ledger.cost_usd, rel=1e-12)
    assert out["allocated_usd"] == pytest.approx(served_ledger.cost_usd, rel=1e-12)
    assert out["allocated_usd"] == pytest.approx(out["model_usd"] + out["overhead_usd"])
    assert total["cost_usd"] == pytest.approx(total["model_usd"] + total["overhead_usd"])
    parts = ("startup_usd", "model_usd", "overhead_usd", "unmatched_usd", "idle_usd")
    assert sum(out[k] for k in parts) == pytest.approx(out["billed_usd"], rel=1e-12)
    assert 0 < out["startup_usd"] < out["billed_usd"]  # loading the model is billed, apart
    assert out["utilization"] == pytest.approx(out["allocated_usd"] / out["billed_usd"])


def test_report_csv_matches_the_ledger(served_ledger: ServedLedger) -> None:
    """`report --format csv` has a header, a row per endpoint and a total equal to the ledger's."""
    result = invoke(
        "report", "--ledger", str(served_ledger.path), "--format", "csv", "--by", "version"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["key"] for r in rows] == ["digits:1", "total"]
    total = rows[-1]
    assert int(total["requests"]) == served_ledger.requests
    assert int(total["errors"]) == served_ledger.errors
    assert float(total["cost_usd"]) == pytest.approx(served_ledger.cost_usd, rel=1e-12)
    assert float(total["model_usd"]) + float(total["overhead_usd"]) == pytest.approx(
        float(total["cost_usd"])
    )


def test_report_csv_repeats_the_window_on_every_row(served_ledger: ServedLedger) -> None:
    """CSV rows carry the window's billed, start-up and idle dollars, the same on every row, and
    they add up with the total's model and overhead."""
    args = ["--ledger", str(served_ledger.path), "--format"]
    out = json.loads(invoke("report", *args, "json").output)
    result = invoke("report", *args, "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    window = [k for k in rows[0] if k.startswith("window_")]
    assert {"window_billed_usd", "window_startup_usd", "window_idle_usd"} <= set(window)
    for row in rows:
        assert {k: row[k] for k in window} == {k: rows[0][k] for k in window}
    first, total = rows[0], rows[-1]
    assert float(first["window_billed_usd"]) == pytest.approx(out["billed_usd"], rel=1e-12)
    parts = [first["window_startup_usd"], total["model_usd"], total["overhead_usd"],
             first["window_unmatched_usd"], first["window_idle_usd"]]  # fmt: skip
    assert sum(map(float, parts)) == pytest.approx(float(first["window_billed_usd"]), rel=1e-9)
    assert float(first["window_startup_usd"]) > 0


def test_report_table_shows_the_totals(served_ledger: ServedLedger) -> None:
    """The default table lists the endpoint and total rows and billed = allocated + idle."""
    result = invoke("report", "--ledger", str(served_ledger.path), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]
    assert [row[0] for row in rows] == ["digits", "total"]
    assert rows[1][:3] == ["total", str(served_ledger.requests), str(served_ledger.errors)]
    header = next(line for line in lines if line.startswith("┃"))
    assert "$ model" in header and "$ overhead" in header
    (billed,) = [line for line in lines if line.startswith("billed $")]
    assert "= start-up $" in billed and "+ model $" in billed and "+ overhead $" in billed
    assert "+ idle $" in billed


def test_report_since_a_duration_keeps_recent_rows(served_ledger: ServedLedger) -> None:
    """`--since 1h` starts the window an hour back, so rows written just now are all in it."""
    before = time.time()
    result = invoke(
        "report", "--ledger", str(served_ledger.path), "--since", "1h", "--format", "json"
    )
    after = time.time()
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert before - 3600 <= out["since"] <= after - 3600
    assert out["rows"][-1]["requests"] == served_ledger.requests


def test_report_since_in_the_future_is_an_error(served_ledger: ServedLedger) -> None:
    """`--since` a date in the future exits 2 naming --since, instead of a report of zeros."""
    args = ["--ledger", str(served_ledger.path), "--since", "2999-01-01", "--format", "json"]
    result = invoke("report", *args)
    assert result.exit_code == 2
    assert "error: --since 2999-01-01 00:00:00 is in the future" in result.output
    assert "hint:" in result.output and "Traceback" not in result.output


def test_report_until_before_since_is_an_error(served_ledger: ServedLedger) -> None:
    """A window that ends before it starts exits 2 naming --until."""
    result = invoke("report", "--ledger", str(served_ledger.path), "--since", "1h",
                    "--until", "2h")  # fmt: skip
    assert result.exit_code == 2
    assert "error: --until" in result.output and "is before --since" in result.output


def test_report_until_ends_the_window(served_ledger: ServedLedger) -> None:
    """`--until` a date before the run leaves nothing; one in the future is read as now."""
    args = ["--ledger", str(served_ledger.path), "--format", "json"]
    past = json.loads(invoke("report", *args, "--until", "2001-01-01").output)
    assert past["rows"][-1]["requests"] == 0 and past["billed_usd"] == 0.0
    assert past["until"] == datetime(2001, 1, 1).timestamp()
    before = time.time()
    future = invoke("report", *args, "--until", "2999-01-01")
    assert future.exit_code == 0, future.output
    out = json.loads(future.output)
    assert before <= out["until"] <= time.time()
    assert out["rows"][-1]["requests"] == served_ledger.requests
    recent = json.loads(invoke("report", *args, "--since", "1h", "--until", "30m").output)
    assert recent["rows"][-1]["requests"] == 0  # the run is minutes old, not half an hour


def test_report_bad_until_is_a_usage_error(served_ledger: ServedLedger) -> None:
    """An unparseable --until exits 2 with a usage error naming --until."""
    result = invoke("report", "--ledger", str(served_ledger.path), "--until", "tomorrow")
    assert result.exit_code == 2
    assert "--until" in result.output and "30m" in result.output


def test_report_by_version_charges_each_cascade_tier(tmp_path: Path) -> None:
    """`--by version` gives each tier the model dollars of the items it ran; the request, its
    latency and its overhead stay with the version that answered."""
    from frugal.accounting import LedgerRow, SqliteLedger

    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=3.6, slots=1)
    ledger.mark_ready()
    for i, (model, tiers) in enumerate([("small", ""), ("large", "small:1=2e-06;large:1=6e-06")]):
        model_usd = 2e-6 if not tiers else 8e-6
        ledger.record(LedgerRow(
            ts=time.time(), request_id=f"r{i}", endpoint="digits", model=model, version="1",
            items=1, batch_size=1.0, queue_ms=0.0, compute_ms=1.0, latency_ms=5.0 + i,
            cost_usd=model_usd + 1e-7, status=200, model_usd=model_usd, overhead_usd=1e-7,
            tier_costs=tiers,
        ))  # fmt: skip
    ledger.close()
    result = invoke("report", "--ledger", str(path), "--by", "version", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in json.loads(result.output)["rows"]}
    assert rows["small:1"]["model_usd"] == pytest.approx(4e-6)
    assert rows["large:1"]["model_usd"] == pytest.approx(6e-6)
    assert rows["small:1"]["requests"] == rows["large:1"]["requests"] == 1
    assert rows["large:1"]["overhead_usd"] == pytest.approx(1e-7)
    assert rows["large:1"]["p50_ms"] == 6.0
    assert rows["total"]["cost_usd"] == pytest.approx(1e-5 + 2e-7)


def test_report_bad_since_is_a_usage_error(served_ledger: ServedLedger) -> None:
    """An unparseable --since exits 2 with a usage error naming --since."""
    result = invoke("report", "--ledger", str(served_ledger.path), "--since", "yesterday")
    assert result.exit_code == 2
    assert "--since" in result.output and "30m" in result.output


def test_report_missing_ledger_hints_to_serve(tmp_path: Path) -> None:
    """A report on a ledger that does not exist exits 2 naming it, with a hint."""
    path = tmp_path / "absent.db"
    result = invoke("report", "--ledger", str(path))
    assert result.exit_code == 2
    assert f"error: {path}: no ledger here yet" in result.output
    assert "hint: run `frugal serve` first" in result.output


def test_report_reads_the_ledger_named_by_the_config(
    served_ledger: ServedLedger, digits_model_file: Path, tmp_path: Path
) -> None:
    """Without --ledger, report reads the ledger.path of the --config file."""
    path = write_config(tmp_path, digits_config(digits_model_file, tmp_path), name="other.yaml")
    result = invoke("report", "--config", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"][-1]["requests"] == served_ledger.requests


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("30m", 1800), ("1h", 3600), ("1.5d", 129600), ("2w", 1209600)],
)
def test_parse_since_durations(value: str, seconds: float) -> None:
    """A duration is counted back from now."""
    before = time.time()
    since = parse_since(value)
    after = time.time()
    assert since is not None and before - seconds <= since <= after - seconds


def test_parse_since_dates() -> None:
    """An ISO date or date-time is read as local time; no value means no window start."""
    assert parse_since("2026-11-01") == datetime(2026, 11, 1).timestamp()
    assert parse_since("2026-11-01T12:30:00") == datetime(2026, 11, 1, 12, 30).timestamp()
    assert parse_since(None) is None
    with pytest.raises(click.BadParameter):
        parse_since("1y")


# ---- help ----------------------------------------------------------------------------------


def test_main_help_lists_the_commands() -> None:
    """`frugal --help` explains itself and lists every command, mentioning sha256."""
    result = invoke("--help")
    assert result.exit_code == 0
    assert "lowest cost per request" in result.output
    for command in ("serve", "validate", "report", "demo"):
        assert f"  {command} " in result.output
    assert "sha256" in result.output


def test_serve_help_explains_verification_and_shutdown() -> None:
    """`frugal serve --help` says model files are checked by sha256 and what SIGTERM does."""
    result = invoke("serve", "--help")
    assert result.exit_code == 0
    assert "sha256" in result.output and "SIGTERM" in result.output
    assert "--workers" in result.output and "--port" in result.output


def test_serve_refuses_an_upstream_whose_key_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 2 naming the variable before serving, not a failure on the first request."""
    monkeypatch.delenv("FRUGAL_TEST_UNSET_KEY", raising=False)
    data = {"instance": {"price_usd_per_hour": 0.36},
            "models": [{"name": "gpt", "runtime": "openai", "upstream": {
                "base_url": "https://api.example.com/v1", "model": "gpt-4o-mini",
                "api_key_env": "FRUGAL_TEST_UNSET_KEY"}}],
            "ledger": {"path": str(tmp_path / "ledger.db")}}  # fmt: skip
    result = CliRunner().invoke(main, ["serve", str(write_config(tmp_path, data))])
    assert result.exit_code == 2, result.output
    assert "FRUGAL_TEST_UNSET_KEY is not set" in result.output
    assert "hint: export FRUGAL_TEST_UNSET_KEY=" in result.output
