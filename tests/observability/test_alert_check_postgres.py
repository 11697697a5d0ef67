"""`frugal alerts check --ledger postgresql://...`: the same rules on a PostgreSQL ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.access import KeyStore
from frugal.cli import main
from tests.accounting.test_ledger_postgres import query
from tests.conftest import digits_config, write_config
from tests.waiting import eventually


def test_alerts_check_reads_a_postgres_ledger(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any, pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A real server books into PostgreSQL; the check finds the slow endpoint and the key near
    its budget there, and with the default thresholds (no config) nothing fires."""
    data = digits_config(digits_model_file, tmp_path)
    data["ledger"] |= {"url": pg_url}
    data["models"].append({"name": "words", "runtime": "python",
                           "factory": "tests.serving.test_auth:make_words"})  # fmt: skip
    data["endpoints"].append({"name": "words", "model": "words"})
    data["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    data["alerts"] = {"endpoints": {"digits": {"p99_ms": 0.001}}}  # every answer is slower
    path = write_config(tmp_path, data)
    near = KeyStore(tmp_path / "keys.db").create("near", "user", tokens_day=10)[1]
    server = serve(path)
    headers = {"authorization": f"Bearer {near}"}
    for row in digits[0][:5]:
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict", headers=headers,
                       json={"instances": [row.tolist()]}, timeout=30)  # fmt: skip
        assert r.status_code == 200
    r = httpx.post(f"{server.url}/v1/endpoints/words/predict", headers=headers,
                   json={"instances": ["one two three"] * 3}, timeout=30)  # fmt: skip
    assert r.status_code == 200
    eventually(lambda: query(pg_url, "SELECT COUNT(*) FROM requests")[0][0] == 6,
               "6 rows in the PostgreSQL ledger")  # fmt: skip

    result = CliRunner().invoke(main, ["alerts", "check", "--config", str(path), "--ledger",
                                       pg_url, "--format", "json"])  # fmt: skip
    assert result.exit_code == 1, result.output
    firing = {(f["alert"], f["subject"]) for f in json.loads(result.stdout)["firing"]}
    assert firing == {("FrugalP99AboveSLO", "digits"),
                      ("FrugalBudgetMostlySpent", "near (tokens_day)")}  # fmt: skip

    elsewhere = tmp_path / "elsewhere"  # no frugal.yaml here: the default thresholds
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["alerts", "check", "--ledger", pg_url])
    assert result.exit_code == 0, result.output
    assert "no alert fires" in result.stdout
