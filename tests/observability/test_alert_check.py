"""`frugal alerts check`: the rules evaluated from a ledger written by a real server.

Traffic goes through a real server over a socket: a canary that fails (5xx, then rolled back), a
cache that never hits beside one that does, a slow model, a key near its token budget. The one
thing a test cannot wait for is a week: the week-over-week rule's history is the same real rows
copied seven days back (at half the cost for the endpoint whose $ per 1k must have risen).
The webhook is a real HTTP server on 127.0.0.1 that records what it is sent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from frugal.access import KeyStore
from frugal.cli import main
from frugal.types import Prediction
from tests.conftest import DIGITS_INPUTS, digits_config, write_config
from tests.waiting import eventually

WEEK_S = 7 * 86400


class AlwaysFails:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        raise RuntimeError("the canary is broken")


class Slow:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        time.sleep(0.03)  # slower than the 10 ms SLO this test gives its endpoint
        return [Prediction(0, 1.0) for _ in items]


def make_failing() -> AlwaysFails:
    return AlwaysFails()


def make_slow() -> Slow:
    return Slow()


def python_model(name: str, version: str, factory: str) -> dict[str, Any]:
    return {"name": name, "version": version, "runtime": "python", "inputs": DIGITS_INPUTS,
            "factory": f"tests.observability.test_alert_check:{factory}"}  # fmt: skip


def alerting_config(model_file: Path, tmp_path: Path) -> dict[str, Any]:
    data = digits_config(model_file, tmp_path)
    data["models"] += [
        python_model("digits", "2", "make_failing"),
        python_model("slow", "1", "make_slow"),
        {"name": "words", "runtime": "python", "factory": "tests.serving.test_auth:make_words"},
    ]
    data["endpoints"] = [
        {"name": "digits", "model": "digits:1"},
        {"name": "canary", "route": {
            "split": [{"model": "digits:1", "weight": 70}, {"model": "digits:2", "weight": 30}],
            "rollback": {"window_s": 60, "min_requests": 10, "error_rate_margin": 0.05}}},
        {"name": "cold", "model": "digits:1", "cache": {"ttl_s": 600}},
        {"name": "warm", "model": "digits:1", "cache": {"ttl_s": 600}},
        {"name": "slow", "model": "slow"},
        {"name": "words", "model": "words"},
    ]  # fmt: skip
    data["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    data["alerts"] = {"endpoints": {"slow": {"p99_ms": 10}}, "cache_hit_ratio_min": 0.5}
    return data


def post(url: str, endpoint: str, secret: str, instances: list[Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/endpoints/{endpoint}/predict", json={"instances": instances},
                      headers={"authorization": f"Bearer {secret}"}, timeout=30)  # fmt: skip


def copy_back_a_week(ledger: Path, endpoint: str, cost_factor: float) -> int:
    """The endpoint's rows again, seven days earlier, their dollars times ``cost_factor``, as
    an earlier run's (the live run's writer adds overhead shares to its own newer rows)."""
    with sqlite3.connect(ledger) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(requests)")]
        scaled = {"ts": f"ts - {WEEK_S}", "run_id": "'a-week-earlier'",
                  "cost_usd": "cost_usd * ?", "model_usd": "model_usd * ?",
                  "overhead_usd": "overhead_usd * ?"}  # fmt: skip
        select = ", ".join(scaled.get(c, c) for c in columns)
        args = [cost_factor] * sum(c in scaled and "?" in scaled[c] for c in columns) + [endpoint]
        cursor = db.execute(
            f"INSERT INTO requests ({', '.join(columns)}) SELECT {select} FROM requests "
            "WHERE endpoint = ?", args)  # fmt: skip
        return cursor.rowcount


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps each JSON body POSTed to it."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def check(*args: str) -> Result:
    return CliRunner().invoke(main, ["alerts", "check", *args])


def fired(result: Result) -> set[tuple[str, str]]:
    body = json.loads(result.stdout)
    return {(f["alert"], f["subject"]) for f in body["firing"]}


def test_each_rule_fires_from_a_real_servers_ledger_and_the_webhook_gets_it(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any, receiver: Receiver
) -> None:
    """Each of the six rules fires for the endpoint or key that crossed its threshold, and for
    none of those beside it that stayed within; the webhook gets the same JSON."""
    path = write_config(tmp_path, alerting_config(digits_model_file, tmp_path))
    keys = KeyStore(tmp_path / "keys.db")
    secret = keys.create("app", "user")[1]
    near = keys.create("near", "user", tokens_day=10)[1]  # 9 of 10 tokens: 90% >= 80%
    far = keys.create("far", "user", tokens_day=100)[1]  # 9 of 100: no alert
    viewer = {"authorization": f"Bearer {keys.create('ops', 'viewer')[1]}"}
    server = serve(path)
    rows = [r.tolist() for r in digits[0][:120]]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: post(server.url, "canary", secret, [rows[i]]),
                                range(60)))  # fmt: skip
    assert {a.status_code for a in answers} == {200, 500}  # the canary failed some ...

    def rolled_back() -> bool:  # ... until its watch cut it (judged on later answers)
        post(server.url, "canary", secret, [rows[0]])
        return bool(server.engine.routes.splits["canary"].router.weights["digits:2"] == 0.0)

    eventually(rolled_back, "the canary to be rolled back", interval_s=0.05)
    for i in range(40):
        assert post(server.url, "digits", secret, [rows[i]]).status_code == 200
        assert post(server.url, "cold", secret, [rows[i]]).status_code == 200  # never the same
        assert post(server.url, "warm", secret, [rows[0]]).status_code == 200  # always the same
    for i in range(20):
        assert post(server.url, "slow", secret, [rows[i]]).status_code == 200
    for key in (near, far):
        assert post(server.url, "words", key, ["one two three"] * 3).status_code == 200
    metrics = httpx.get(f"{server.url}/metrics", headers=viewer).text
    assert 'frugal_budget_spent_ratio{budget="tokens_day",key="near"} 0.9' in metrics
    ledger = tmp_path / "ledger.db"

    def audited_and_booked() -> bool:
        with sqlite3.connect(ledger) as db:
            booked = db.execute("SELECT COUNT(*) FROM requests WHERE endpoint = 'words'").fetchone()
            rolled = db.execute("SELECT COUNT(*) FROM audit WHERE action = 'route.auto_rollback'")
            return bool(booked[0] == 2 and rolled.fetchone()[0] == 1)

    eventually(audited_and_booked, "the last rows and the rollback's audit row in the ledger",
               ignoring=(sqlite3.OperationalError,))  # fmt: skip
    assert copy_back_a_week(ledger, "digits", 0.5) == 40  # $ per 1k doubled since last week
    assert copy_back_a_week(ledger, "cold", 1.0) == 40  # ... and the same for cold

    result = check("--config", str(path), "--webhook", receiver.url, "--format", "json")
    assert result.exit_code == 1, result.output
    assert fired(result) == {
        ("FrugalCostPer1kRising", "digits"),
        ("FrugalCacheHitRatioLow", "cold"),
        ("FrugalP99AboveSLO", "slow"),
        ("FrugalErrorRateHigh", "canary"),
        ("FrugalBudgetMostlySpent", "near (tokens_day)"),
        ("FrugalCanaryRolledBack", "canary/digits:2"),
    }
    (sent,) = receiver.bodies
    assert sent == json.loads(result.stdout)
    rise = next(f for f in sent["firing"] if f["alert"] == "FrugalCostPer1kRising")
    assert rise["value"] == pytest.approx(2.0) and rise["threshold"] == 1.25

    table = check("--config", str(path))  # the same, as a table for people
    assert table.exit_code == 1
    assert "6 firing" in table.stdout and "FrugalCanaryRolledBack" in table.stdout


def test_nothing_fires_on_healthy_traffic_exit_0_and_no_webhook(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any, receiver: Receiver
) -> None:
    """Quiet traffic within every threshold: exit 0, 'no alert fires', nothing POSTed."""
    data = digits_config(digits_model_file, tmp_path)
    data["alerts"] = {"webhook_url": receiver.url}
    path = write_config(tmp_path, data)
    server = serve(path)
    for row in digits[0][:20]:
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                       json={"instances": [row.tolist()]}, timeout=30)  # fmt: skip
        assert r.status_code == 200

    def booked() -> bool:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return bool(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 20)

    eventually(booked, "20 rows in the ledger", ignoring=(sqlite3.OperationalError,))
    result = check("--config", str(path))
    assert result.exit_code == 0, result.output
    assert "no alert fires" in result.stdout
    assert receiver.bodies == []


def test_a_failed_webhook_still_prints_and_exits_3(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """A webhook that answers 500, or is not there, is reported; what fires is printed anyway."""
    data = digits_config(digits_model_file, tmp_path)
    data["alerts"] = {"p99_ms": 0.001}  # every answer is slower than a microsecond
    path = write_config(tmp_path, data)
    server = serve(path)
    r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                   json={"instances": [digits[0][0].tolist()]}, timeout=30)  # fmt: skip
    assert r.status_code == 200

    def booked() -> bool:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return bool(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1)

    eventually(booked, "the row in the ledger", ignoring=(sqlite3.OperationalError,))
    with Receiver(status=500) as failing:
        result = check("--config", str(path), "--webhook", failing.url)
        assert len(failing.bodies) == 1
    assert result.exit_code == 3
    assert "FrugalP99AboveSLO" in result.stdout and "answered 500" in result.stderr
    gone = f"http://127.0.0.1:{failing.server.server_address[1]}/hook"  # closed now
    result = check("--config", str(path), "--webhook", gone)
    assert result.exit_code == 3
    assert "FrugalP99AboveSLO" in result.stdout and "ConnectError" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ledger", "missing.db"], "no ledger here yet"),
        (["--ledger", "junk.db"], "not a frugal ledger"),
        (["--config", "missing.yaml"], "file not found"),
        (["--ledger", "x.db", "--webhook", "mailto:ops"], "--webhook"),
        ([], "no ./frugal.yaml"),
    ],
)
def test_bad_input_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """A missing ledger or config, or a webhook that is not a URL: exit 2, never a traceback."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.db").write_bytes(b"")
    (tmp_path / "junk.db").write_text("not a database, at all\n" * 10)
    result = check(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
