"""``/admin/endpoints/{name}/route`` on a real server: weights, promote, roll back, audited."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest

from frugal.access import AuditLog, KeyStore
from frugal.accounting import build_report
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from tests.conftest import DIGITS_INPUTS, TEST_INSTANCE
from tests.waiting import eventually


def split_config(versions: dict[str, Path], tmp_path: Path, **route: Any) -> dict[str, Any]:
    models = [
        {
            "name": "clf",
            "version": v,
            "runtime": "sklearn",
            "path": str(p),
            "sha256": sha256_of(p),
            "inputs": DIGITS_INPUTS,
        }
        for v, p in versions.items()
    ]
    return {
        "instance": TEST_INSTANCE,
        "models": models,
        "endpoints": [
            {
                "name": "digits",
                "route": {
                    "split": [{"model": "clf:1", "weight": 90}, {"model": "clf:2", "weight": 10}],
                    **route,
                },
            },
            {"name": "plain", "model": "clf:1"},
        ],
        "ledger": {
            "path": str(tmp_path / "ledger.db"),
            "flush_interval_ms": 10,
            "cost_interval_ms": 20,
        },
        "auth": {"keys": str(tmp_path / "keys.db")},
    }


def test_weights_promote_and_rollback_are_applied_and_audited(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    store = KeyStore(tmp_path / "keys.db")
    admin = {"authorization": f"Bearer {store.create('ops-alice', 'admin')[1]}"}
    user = {"authorization": f"Bearer {store.create('app', 'user')[1]}"}
    server = serve(parse_config(split_config(digit_versions, tmp_path, sticky=True)))
    route = f"{server.url}/admin/endpoints/digits/route"
    predict = f"{server.url}/v1/endpoints/digits/predict"
    body = {"instances": [digits[0][1300].tolist()]}

    state = httpx.get(route, headers=admin).json()
    assert state == {"endpoint": "digits", "weights": {"clf:1": 90.0, "clf:2": 10.0},
                     "configured": {"clf:1": 90.0, "clf:2": 10.0}, "baseline": "clf:1",
                     "sticky": True}  # fmt: skip

    r = httpx.post(route, headers=admin, json={"weights": {"clf:1": 50, "clf:2": 50}})
    assert r.status_code == 200
    assert r.json() == {"endpoint": "digits", "before": {"clf:1": 90.0, "clf:2": 10.0},
                        "after": {"clf:1": 50.0, "clf:2": 50.0}}  # fmt: skip

    # Sticky over HTTP: each end user (x-frugal-user under the key) keeps one version.
    seen: dict[str, set[str]] = {}
    for i in range(60):
        end_user = f"u{i % 20}"
        r = httpx.post(predict, headers=user | {"x-frugal-user": end_user}, json=body)
        assert r.status_code == 200
        seen.setdefault(end_user, set()).add(r.headers["x-frugal-model"])
    assert all(len(models) == 1 for models in seen.values())
    assert {m for models in seen.values() for m in models} == {"clf:1", "clf:2"}

    r = httpx.post(route, headers=admin, json={"promote": "clf:2"})  # blue-green in one call
    assert r.json()["after"] == {"clf:1": 0.0, "clf:2": 100.0}
    models = {httpx.post(predict, headers=user | {"x-frugal-user": f"u{i}"}, json=body)
              .headers["x-frugal-model"] for i in range(20)}  # fmt: skip
    assert models == {"clf:2"}

    r = httpx.post(route, headers=admin, json={"rollback": True})  # back to the config's main
    assert r.json()["after"] == {"clf:1": 90.0, "clf:2": 0.0}
    assert httpx.post(predict, headers=user, json=body).headers["x-frugal-model"] == "clf:1"

    events = [e for e in AuditLog(tmp_path / "ledger.db").entries()
              if e.action.startswith("route.")]  # fmt: skip
    assert [(e.action, e.actor, e.target) for e in events] == [
        ("route.weights", "ops-alice", "digits"),
        ("route.promote", "ops-alice", "digits"),
        ("route.rollback", "ops-alice", "digits"),
    ]
    assert events[1].detail == {"before": {"clf:1": 50.0, "clf:2": 50.0},
                                "after": {"clf:1": 0.0, "clf:2": 100.0}}  # fmt: skip
    assert AuditLog(tmp_path / "ledger.db").verify().ok
    assert httpx.post(route, headers=user, json={"rollback": True}).status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "body"),
        ({"weights": {"clf:1": 1}, "promote": "clf:1"}, 400, "body"),
        ({"weights": {"clf:3": 1}}, 400, "weights"),
        ({"weights": {"clf:1": 0, "clf:2": 0}}, 400, "weights"),
        ({"weights": {"clf:1": -1, "clf:2": 1}}, 400, "weights"),
        ({"weights": {"clf:1": True}}, 400, "weights"),
        ({"weights": [1, 2]}, 400, "weights"),
        ({"promote": "nope"}, 400, "promote"),
        ({"promote": 3}, 400, "promote"),
        ({"rollback": "yes"}, 400, "rollback"),
        ({"canary": 5}, 400, "canary"),
    ],
)
def test_bad_route_changes_name_the_field_and_change_nothing(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path, body: dict[str, Any], status: int,
    field: str,
) -> None:  # fmt: skip
    data = split_config(digit_versions, tmp_path)
    del data["auth"]  # loopback admin
    server = serve(parse_config(data))
    route = f"{server.url}/admin/endpoints/digits/route"
    r = httpx.post(route, json=body)
    assert r.status_code == status
    assert r.json()["field"] == field
    assert httpx.get(route).json()["weights"] == {"clf:1": 90.0, "clf:2": 10.0}


def test_route_admin_on_an_endpoint_without_a_split_is_a_404(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path
) -> None:
    data = split_config(digit_versions, tmp_path)
    del data["auth"]
    server = serve(parse_config(data))
    for endpoint in ("plain", "nope"):
        r = httpx.post(f"{server.url}/admin/endpoints/{endpoint}/route", json={"rollback": True})
        assert r.status_code == 404
        assert "splits: digits" in r.json()["error"]


def test_shadow_over_http_leaves_answers_alone_and_reports_its_cost_apart(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    data = split_config(digit_versions, tmp_path)
    del data["auth"]
    data["endpoints"] = [{"name": "digits", "route": {"model": "clf:1",
                                                      "shadow": {"model": "clf:2"}}}]  # fmt: skip
    server = serve(parse_config(data))
    rows = digits[0][1300:1360]
    answers = [
        httpx.post(f"{server.url}/v1/endpoints/digits/predict", json={"instances": [r.tolist()]})
        for r in rows
    ]
    v1 = joblib.load(digit_versions["1"])
    assert [a.json()["predictions"][0] for a in answers] == v1.predict(rows).tolist()
    assert {a.headers["x-frugal-model"] for a in answers} == {"clf:1"}

    def shadows() -> bool:  # shadow rows land after their answers
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            (count,) = db.execute("SELECT count(*) FROM requests WHERE shadow = 1").fetchone()
        return bool(count == len(rows))

    eventually(shadows, f"{len(rows)} shadow rows in the ledger")
    report = build_report(tmp_path / "ledger.db")
    by_key = {row.key: row for row in report.rows}
    assert set(by_key) == {"digits", "digits (shadow)"}
    assert by_key["digits"].requests == by_key["digits (shadow)"].requests == len(rows)
    assert report.total.requests == len(rows)  # copies are spend, not requests
    assert report.total.shadow_usd == pytest.approx(by_key["digits (shadow)"].cost_usd)
    assert report.total.cost_usd == pytest.approx(
        by_key["digits"].cost_usd + by_key["digits (shadow)"].cost_usd
    )
    v2 = joblib.load(digit_versions["2"])
    agreed = int((v1.predict(rows) == v2.predict(rows)).sum())
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (f'frugal_shadow_items_total{{endpoint="digits",model="clf:2",result="agreed"}} '
            f"{float(agreed)}") in metrics  # fmt: skip


def test_the_route_cli_shows_sets_promotes_and_rolls_back(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path
) -> None:
    data = split_config(digit_versions, tmp_path)
    del data["auth"]
    server = serve(parse_config(data))

    def frugal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "frugal", "route", *args, "--url", server.url],
            capture_output=True, text=True, timeout=60,
            env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[2]), "COLUMNS": "120"},
        )  # fmt: skip

    shown = frugal("show", "digits")
    assert shown.returncode == 0, shown.stderr
    assert "clf:1 (baseline)" in shown.stdout and "90.0%" in shown.stdout
    changed = frugal("set", "digits", "clf:1=60", "clf:2=40")
    assert changed.returncode == 0 and "60" in changed.stdout
    assert server.engine.routes.splits["digits"].router.weights == {"clf:1": 60.0, "clf:2": 40.0}
    assert frugal("promote", "digits", "clf:2").returncode == 0
    assert server.engine.routes.splits["digits"].router.weights == {"clf:1": 0.0, "clf:2": 100.0}
    assert frugal("rollback", "digits").returncode == 0
    assert server.engine.routes.splits["digits"].router.weights == {"clf:1": 90.0, "clf:2": 0.0}

    bad = frugal("set", "digits", "clf:1")
    assert bad.returncode == 2 and "is not VERSION=WEIGHT" in bad.stderr
    unknown = frugal("promote", "digits", "clf:7")
    assert unknown.returncode == 2 and "answered 400" in unknown.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr


def test_a_failing_version_is_named_in_its_errors_and_ledger_rows(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    data = split_config(digit_versions, tmp_path)
    del data["auth"]
    data["models"][1] = {"name": "clf", "version": "2", "runtime": "python",
                         "factory": "tests.routing.test_split:make_failing",
                         "inputs": DIGITS_INPUTS}  # fmt: skip
    data["endpoints"][0]["route"]["split"][1]["weight"] = 50
    server = serve(parse_config(data))
    body = {"instances": [digits[0][1300].tolist()]}
    answers = [httpx.post(f"{server.url}/v1/endpoints/digits/predict", json=body)
               for _ in range(40)]  # fmt: skip
    by_status = {(a.status_code, a.headers["x-frugal-model"]) for a in answers}
    assert by_status == {(200, "clf:1"), (500, "clf:2")}

    def rows() -> list[tuple[int, str]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return db.execute("SELECT status, model || ':' || version FROM requests").fetchall()

    written = eventually(lambda: r if len(r := rows()) == 40 else [], "40 ledger rows")
    assert set(written) == {(200, "clf:1"), (500, "clf:2")}
