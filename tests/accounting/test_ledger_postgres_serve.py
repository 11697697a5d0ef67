"""A real `frugal serve --workers 2` on one PostgreSQL ledger: every answer counted once."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx

from frugal.accounting import build_report
from tests.accounting.test_ledger_postgres import query
from tests.conftest import ServerProcess, assert_charged, digits_config, write_config
from tests.pg_server import PostgresServer
from tests.test_cli import invoke
from tests.waiting import eventually


def test_two_workers_on_one_postgres_ledger_count_every_answer_once(
    digits_model_file: Path, tmp_path: Path, digits: Any, pg_url: str
) -> None:
    """Each answer has exactly one row (matched by x-request-id) whose model share is the one its
    header charged, each worker is a run of its own, and `frugal report` on the database sums
    exactly those rows."""
    data = digits_config(digits_model_file, tmp_path)
    data["ledger"] |= {"url": pg_url}
    x, _ = digits
    charged: dict[str, str] = {}
    with (
        ServerProcess(write_config(tmp_path, data), "--workers", "2") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for i in range(60):
            request_id = f"req-{i:03d}"
            body = {"instances": x[i : i + 1 + i % 3].tolist()}
            answer = client.post("/v1/endpoints/digits/predict", json=body,
                                 headers={"x-request-id": request_id})  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-request-id"] == request_id
            charged[request_id] = answer.headers["x-frugal-cost-usd"]
    # The server has exited (SIGTERM): both workers flushed and stamped their runs' ends.
    rows = query(pg_url, "SELECT request_id, model_usd, cost_usd, run_id FROM requests")
    assert sorted(r[0] for r in rows) == sorted(charged)  # one row per answer, no more
    for request_id, model_usd, _cost, _run in rows:
        assert_charged(charged[request_id], model_usd)
    runs = query(pg_url, "SELECT run_id, stopped FROM runs")
    assert len(runs) == 2 and all(stopped is not None for _, stopped in runs)
    assert {r[3] for r in rows} <= {run_id for run_id, _ in runs}

    report = build_report(pg_url)
    assert report.total.requests == 60
    assert math.isclose(report.total.model_usd, math.fsum(r[1] for r in rows), rel_tol=1e-12)
    assert math.isclose(report.total.cost_usd, math.fsum(r[2] for r in rows), rel_tol=1e-12)
    result = invoke("report", "--ledger", pg_url, "--format", "json")
    assert result.exit_code == 0, result.output
    total = json.loads(result.output)["rows"][-1]
    assert (total["key"], total["requests"]) == ("total", 60)
    assert math.isclose(total["cost_usd"], report.total.cost_usd, rel_tol=1e-12)


def test_the_database_down_mid_run_then_back_loses_no_answer(
    digits_model_file: Path, tmp_path: Path, digits: Any, own_postgres: PostgresServer, serve: Any
) -> None:
    """While PostgreSQL is down the server keeps answering and its readiness is off; once it is
    back readiness returns and every answer, before, during and after, has exactly one row."""
    url = own_postgres.create_database()
    data = digits_config(digits_model_file, tmp_path)
    data["ledger"] |= {"url": url}
    server = serve(write_config(tmp_path, data))
    x, _ = digits
    sent: list[str] = []

    def ask(client: httpx.Client, n: int) -> None:
        for _ in range(n):
            request_id = f"req-{len(sent):03d}"
            body = {"instances": x[len(sent) : len(sent) + 1].tolist()}
            answer = client.post("/v1/endpoints/digits/predict", json=body,
                                 headers={"x-request-id": request_id})  # fmt: skip
            assert answer.status_code == 200, answer.text
            sent.append(request_id)

    def ready(client: httpx.Client) -> bool:
        return client.get("/v2/health/ready").status_code == 200

    with httpx.Client(base_url=server.url, timeout=30) as client:
        ask(client, 10)
        own_postgres.stop()
        ask(client, 10)
        eventually(lambda: not ready(client), "readiness to turn off", timeout_s=30)
        own_postgres.start()
        eventually(lambda: ready(client), "readiness to return", timeout_s=30)
        ask(client, 10)
    server.__exit__()  # flushes the ledger and stamps the run's end
    rows = query(url, "SELECT request_id FROM requests")
    assert sorted(r for (r,) in rows) == sorted(sent)
