"""Structured logs: a real `frugal serve` process's stderr, one JSON object a line."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.access import KeyStore
from frugal.observability import RequestLog
from tests.conftest import ServerProcess, digits_config, write_config
from tests.llm_double import LLMDouble
from tests.serving.test_openai_api import llm_model
from tests.waiting import eventually

SECRET_PROMPT = "sk-live-PAYLOAD-4242-do-not-log"


def ledger_rows(path: Path, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]]:
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            found = [dict(r) for r in db.execute("SELECT * FROM requests ORDER BY ts")]
        return found if len(found) >= count else []

    return eventually(enough, f"{count} ledger rows")


def test_json_logs_have_a_line_per_request_at_debug_and_no_payload_or_secret(
    digits_model_file: Path, digits: Any, tmp_path: Path
) -> None:
    """--log-format json at debug: every line parses; each request's line matches its ledger
    row; neither the prompt, the pixel values nor the API key's secret appear anywhere."""
    with LLMDouble() as upstream:
        config = digits_config(
            digits_model_file, tmp_path,
            auth={"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05},
        )  # fmt: skip
        config["models"].append(llm_model("gpt", upstream.url))
        config["endpoints"].append({"name": "chat", "model": "gpt"})
        secret = KeyStore(tmp_path / "keys.db").create("alice", "user")[1]
        auth = {"authorization": f"Bearer {secret}"}
        pixels = [float(v) + 0.123456789 for v in digits[0][7]]
        path = write_config(tmp_path, config)
        with ServerProcess(path, "--log-format", "json", "--log-level", "debug") as server:
            digit = httpx.post(f"{server.url}/v1/endpoints/digits/predict", headers=auth,
                               json={"instances": [pixels]}, timeout=30)  # fmt: skip
            chat = httpx.post(f"{server.url}/v1/chat/completions", headers=auth, timeout=30,
                              json={"model": "chat", "messages": [
                                  {"role": "user", "content": SECRET_PROMPT}]})  # fmt: skip
            assert digit.status_code == 200 and chat.status_code == 200, chat.text
            rows = {r["request_id"]: r for r in ledger_rows(tmp_path / "ledger.db", 2)}
        text = server.log_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # not only frugal's
    requests = {line["request_id"]: line for line in lines if line["logger"] == "frugal.requests"}
    assert requests.keys() == rows.keys()
    for request_id, line in requests.items():
        row = rows[request_id]
        assert line["level"] == "debug" and line["key"] == "alice" and line["status"] == 200
        assert line["endpoint"] == row["endpoint"] and line["cache"] == row["cache"]
        assert line["model"] == f"{row['model']}:{row['version']}"
        assert line["latency_ms"] > 0 and line["cost_usd"] > 0
    digit_line = requests[digit.headers["x-request-id"]]
    [batch] = digit_line["batch_ids"]
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # the batch id joins to its batch row
        model, _, ts = batch.partition("@")
        name, version = model.split(":")
        query = "SELECT COUNT(*) FROM batches WHERE model = ? AND version = ? AND ts = ?"
        assert db.execute(query, (name, version, float(ts))).fetchone() == (1,)
    assert requests[chat.headers["x-request-id"]]["batch_ids"] == []
    for leaked in (SECRET_PROMPT, secret, secret[4:], "0.123456789", repr(pixels[1])):
        assert leaked not in text


@pytest.mark.parametrize(("level", "sample", "expected"), [
    (logging.INFO, 1.0, logging.INFO), (logging.INFO, 0.0, 0),
    (logging.DEBUG, 0.0, logging.DEBUG), (logging.WARNING, 1.0, 0),
])  # fmt: skip
def test_a_request_line_is_written_at_debug_always_and_at_info_by_sample(
    level: int, sample: float, expected: int
) -> None:
    """wanted(): debug logs every request; info logs the sampled share; above info, none."""
    logger = logging.getLogger(f"test.requests.{level}.{sample}")
    logger.setLevel(level)
    assert RequestLog(sample, logger).wanted() == expected


def test_at_info_the_sample_decides_how_many_requests_are_logged() -> None:
    """At info with sample 0.25, about a quarter of 4,000 requests get a line."""
    logger = logging.getLogger("test.requests.sampled")
    logger.setLevel(logging.INFO)
    log = RequestLog(0.25, logger)
    written = sum(bool(log.wanted()) for _ in range(4000))
    assert 800 < written < 1200  # 1000 expected; 6 standard deviations either side


def test_the_config_key_sets_json_for_every_worker_and_the_sample_applies_at_info(
    digits_model_file: Path, digits: Any, tmp_path: Path
) -> None:
    """server.log_format json with --workers 2, at info with log_sample 1: every line of both
    processes is JSON and every request has an info line."""
    config = digits_config(digits_model_file, tmp_path,
                           server={"log_format": "json", "log_sample": 1.0})  # fmt: skip
    path = write_config(tmp_path, config)
    with ServerProcess(path, "--workers", "2") as server:
        sent = []
        for row in digits[0][:6]:
            answer = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                                json={"instances": [row.tolist()]}, timeout=30)  # fmt: skip
            assert answer.status_code == 200
            sent.append(answer.headers["x-request-id"])
        ledger_rows(tmp_path / "ledger.db", 6)
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    requests = [line for line in lines if line["logger"] == "frugal.requests"]
    assert sorted(line["request_id"] for line in requests) == sorted(sent)
    assert {line["level"] for line in requests} == {"info"}
    assert len({line["message"] for line in lines if "frugal ready" in line["message"]}) >= 1
