"""ledger.url in frugal.yaml and on the command line: every mistake is exit 2 naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frugal.access import AuditLog
from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.optimize import free_port
from tests.accounting.test_ledger import request_row
from tests.accounting.test_ledger_postgres import opened
from tests.conftest import digits_config, write_config
from tests.test_cli import invoke


def with_ledger(model_file: Path, tmp_path: Path, **ledger: Any) -> dict[str, Any]:
    data = digits_config(model_file, tmp_path)
    data["ledger"] |= ledger
    return data


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@db:5432/x", "the scheme 'mysql' is not postgresql://"),
        ("db.example.com/ledger", "is not postgresql://"),
        ("postgresql://frugal:s3cret@db:5432/ledger", "holds a password"),
        ("postgresql://db:99999/ledger", "not a valid URL"),
    ],
)
def test_a_bad_url_names_ledger_url_and_never_echoes_a_password(
    digits_model_file: Path, tmp_path: Path, url: str, says: str
) -> None:
    """A URL frugal cannot use is refused when the config loads, naming ledger.url; a password
    in it is refused too, and never repeated in the message."""
    with pytest.raises(ConfigError, match=says) as error:
        parse_config(with_ledger(digits_model_file, tmp_path, url=url))
    assert error.value.field == "ledger.url"
    assert "s3cret" not in str(error.value)


def test_password_env_goes_with_url_and_names_a_variable(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """password_env without url, or one that is no variable name, is refused by name."""
    for ledger in (
        {"password_env": "PGPASS"},
        {"url": "postgresql://u@h/db", "password_env": "a b"},
    ):
        with pytest.raises(ConfigError) as error:
            parse_config(with_ledger(digits_model_file, tmp_path, **ledger))
        assert error.value.field == "ledger.password_env"


@pytest.mark.parametrize("verb", ["validate", "serve"])
def test_an_unreachable_server_stops_the_start_with_exit_2(
    digits_model_file: Path, tmp_path: Path, verb: str
) -> None:
    """No server at ledger.url: `frugal validate` and `frugal serve` exit 2 naming the field,
    before any model loads or port opens; no traceback."""
    url = f"postgresql://frugal@127.0.0.1:{free_port()}/ledger"  # nothing listens there
    path = write_config(tmp_path, with_ledger(digits_model_file, tmp_path, url=url))
    extra = ["--port", str(free_port())] if verb == "serve" else []
    result = invoke(verb, str(path), *extra)
    assert result.exit_code == 2, result.output
    assert "ledger.url" in result.output and "cannot connect" in result.output
    assert "Traceback" not in result.output


def test_an_unset_password_variable_is_named(
    digits_model_file: Path, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ledger.password_env naming a variable that is not set: exit 2 naming it."""
    monkeypatch.delenv("FRUGAL_TEST_PG_PASSWORD", raising=False)
    data = with_ledger(digits_model_file, tmp_path, url=pg_url,
                       password_env="FRUGAL_TEST_PG_PASSWORD")  # fmt: skip
    result = invoke("validate", str(write_config(tmp_path, data)))
    assert result.exit_code == 2, result.output
    assert "ledger.password_env" in result.output and "FRUGAL_TEST_PG_PASSWORD" in result.output


def test_report_reads_the_database_a_config_names(
    digits_model_file: Path, tmp_path: Path, pg_url: str
) -> None:
    """`frugal report --config` with ledger.url reads the database; a database no server has
    written yet is exit 2, as a missing ledger file is."""
    path = write_config(tmp_path, with_ledger(digits_model_file, tmp_path, url=pg_url))
    empty = invoke("report", "--config", str(path))
    assert empty.exit_code == 2 and "no ledger" in empty.output, empty.output
    ledger = opened(pg_url)
    for i in range(7):
        ledger.record(request_row(i))
    ledger.close()
    result = invoke("report", "--config", str(path), "--format", "csv")
    assert result.exit_code == 0, result.output
    total = result.output.splitlines()[-1].split(",")
    assert total[:2] == ["total", "7"]


def test_ledger_prune_deletes_from_the_database_a_config_names(
    digits_model_file: Path, tmp_path: Path, pg_url: str
) -> None:
    """`frugal ledger prune --config` with ledger.url deletes the old rows from the database,
    and records the prune in the audit log, which stays in the SQLite file ledger.path."""
    import time

    from tests.accounting.test_ledger_postgres import count

    data = with_ledger(digits_model_file, tmp_path, url=pg_url)
    path = write_config(tmp_path, data)
    ledger = opened(pg_url)
    ledger.record(request_row(0, ts=time.time() - 30 * 86400))
    ledger.record(request_row(1, ts=time.time()))
    ledger.close()
    AuditLog(Path(data["ledger"]["path"])).append("server", "model.load", "digits:1")
    result = invoke("ledger", "prune", "--older-than", "7d", "--config", str(path))
    assert result.exit_code == 0, result.output
    assert "deleted 1 request rows" in result.output and pg_url in result.output
    assert count(pg_url, "requests") == 1
    entries = AuditLog(Path(data["ledger"]["path"])).entries()
    assert [e.action for e in entries] == ["model.load", "ledger.prune"]
