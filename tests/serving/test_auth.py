"""Admission against a real server: 401, 403, 429 (rate and budget), key lifecycle, audit.

Keys are created the way operators create them (the CLI or the admin API), requests go over a
socket, and budgets are read back from the real ledger.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.access import AuditLog, KeyStore
from frugal.cli import main
from frugal.config import parse_config
from frugal.types import Prediction
from tests.conftest import TEST_INSTANCE, digits_config, write_config
from tests.waiting import eventually


class Words:
    """A real python-runtime model that counts words and reports them as tokens."""

    def predict_batch(self, items: Sequence[str]) -> list[Prediction]:
        return [Prediction(len(text.split()), tokens=len(text.split())) for text in items]


def make_words() -> Words:
    return Words()


def auth_config(digits_model_file: Path, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    data = digits_config(digits_model_file, tmp_path, **overrides)
    data["models"].append({"name": "words", "runtime": "python",
                           "factory": "tests.serving.test_auth:make_words"})  # fmt: skip
    data["endpoints"].append({"name": "words", "model": "words"})
    data["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    return data


@pytest.fixture
def secure(serve: Any, digits_model_file: Path, tmp_path: Path) -> Any:
    return serve(parse_config(auth_config(digits_model_file, tmp_path)))


def new_key(tmp_path: Path, name: str, role: str = "user", **limits: Any) -> str:
    return KeyStore(tmp_path / "keys.db").create(name, role, **limits)[1]


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def predict(server: Any, secret: str | None, endpoint: str = "digits", n: int = 1,
            instances: list[Any] | None = None) -> httpx.Response:  # fmt: skip
    body = {"instances": instances or [[0.0] * 64] * n}
    headers = bearer(secret) if secret else {}
    return httpx.post(f"{server.url}/v1/endpoints/{endpoint}/predict", json=body,
                      headers=headers, timeout=30)  # fmt: skip


def ledger_rows(tmp_path: Path, where: str = "1") -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        return db.execute(
            f"SELECT key_name, status, cost_usd, tokens FROM requests WHERE {where}"
        ).fetchall()


def test_missing_and_unknown_keys_get_401_with_www_authenticate(secure: Any) -> None:
    for headers in ({}, bearer("frg_" + "x" * 43), {"authorization": "Basic dXNlcjpwYXNz"}):
        r = httpx.post(f"{secure.url}/v1/endpoints/digits/predict",
                       json={"instances": [[0.0] * 64]}, headers=headers)  # fmt: skip
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        body = r.json()
        assert body["error"] and body["request_id"] == r.headers["x-request-id"]
    infer = httpx.post(f"{secure.url}/v2/models/digits/infer", json={"inputs": []})
    assert infer.status_code == 401
    for path in ("/v2", "/v2/models/digits", "/v1/endpoints", "/metrics", "/admin/cache/stats"):
        assert httpx.get(secure.url + path).status_code == 401, path
    for path in ("/v2/health/live", "/v2/health/ready", "/openapi.json"):
        assert httpx.get(secure.url + path).status_code == 200, path


def test_roles_and_endpoint_lists_get_403(secure: Any, tmp_path: Path) -> None:
    user = new_key(tmp_path, "app", "user", endpoints=["digits"])
    viewer = new_key(tmp_path, "grafana", "viewer")
    admin = new_key(tmp_path, "ops", "admin")
    eventually(lambda: predict(secure, user).status_code == 200, "key 'app' to load")
    words = predict(secure, user, "words", instances=["a b"])
    assert words.status_code == 403 and "'words'" in words.json()["error"]
    assert words.json()["hint"] == "it may call: digits"
    assert predict(secure, viewer).status_code == 403
    assert httpx.get(f"{secure.url}/metrics", headers=bearer(user)).status_code == 403
    assert httpx.get(f"{secure.url}/metrics", headers=bearer(viewer)).status_code == 200
    assert httpx.get(f"{secure.url}/admin/cache/stats", headers=bearer(viewer)).status_code == 403
    assert httpx.get(f"{secure.url}/admin/cache/stats", headers=bearer(admin)).status_code == 200
    assert predict(secure, admin, "words", instances=["a"]).status_code == 200
    assert httpx.get(f"{secure.url}/v2/models/digits", headers=bearer(viewer)).status_code == 200
    metrics = httpx.get(f"{secure.url}/metrics", headers=bearer(admin)).text
    assert 'frugal_refused_total{reason="forbidden"} 4.0' in metrics


def test_refused_requests_reach_no_model_and_write_no_ledger_row(
    secure: Any, tmp_path: Path
) -> None:
    user = new_key(tmp_path, "app", "user")
    eventually(lambda: predict(secure, user).status_code == 200, "key 'app' to load")
    for _ in range(5):
        assert predict(secure, "frg_nope").status_code == 401
        assert predict(secure, None).status_code == 401
    secure.__exit__()  # a stop flushes the ledger: a row the refusals wrote would be there now
    assert [r[:2] for r in ledger_rows(tmp_path)] == [("app", 200)]
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone() == (1,)


def test_rate_limit_answers_429_with_retry_after(secure: Any, tmp_path: Path) -> None:
    limited = new_key(tmp_path, "bursty", "user", rps=2)
    other = new_key(tmp_path, "calm", "user")
    eventually(lambda: predict(secure, other).status_code == 200, "key 'calm' to load")
    started = time.monotonic()
    answers = [predict(secure, limited) for _ in range(8)]
    elapsed = time.monotonic() - started
    statuses = [answer.status_code for answer in answers]
    # The burst is 2; the bucket then frees one token each 0.5 s, so a slow (shared, loaded)
    # machine earns a few more 200s. Anything beyond that bound means the limit leaked.
    assert statuses[:2] == [200, 200] and set(statuses) == {200, 429}
    assert statuses.count(200) <= 2 + int(elapsed * 2) + 1
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "2 requests/s" in refused.json()["error"]
    assert predict(secure, other).status_code == 200  # one key's limit is not another's
    time.sleep(0.6)  # a token frees every 0.5 s
    assert predict(secure, limited).status_code == 200


def test_dollar_budget_answers_429_naming_it_and_charges_nothing_more(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    config = auth_config(digits_model_file, tmp_path)
    server = serve(parse_config(config))
    secret = new_key(tmp_path, "tight", "user", budget_usd_day=1e-12)
    eventually(lambda: predict(server, secret).status_code != 401, "key 'tight' to load")
    refused = predict(server, secret)
    assert refused.status_code == 429
    body = refused.json()
    assert body["budget"]["name"] == "usd_day" and body["budget"]["limit"] == 1e-12
    assert body["budget"]["spent"] > 1e-12 and "00:00 UTC" in body["hint"]
    assert "retry-after" not in refused.headers
    for _ in range(3):
        assert predict(server, secret).status_code == 429
    server.__exit__()  # a stop flushes the ledger: a row the refusals wrote would be there now
    assert [r[:2] for r in ledger_rows(tmp_path)] == [("tight", 200)]

    # The budget is read from the ledger: a restarted server still refuses.
    again = serve(parse_config(config))
    assert predict(again, secret).status_code == 429


def test_token_budget_counts_the_tokens_models_report(secure: Any, tmp_path: Path) -> None:
    secret = new_key(tmp_path, "wordy", "user", tokens_day=5)
    words = ["a b c"]
    eventually(lambda: predict(secure, secret, "words", instances=words).status_code == 200,
               "key 'wordy' to load")  # fmt: skip
    assert predict(secure, secret, "words", instances=["d e f"]).status_code == 200
    refused = predict(secure, secret, "words", instances=["g"])
    assert refused.status_code == 429 and refused.json()["budget"]["name"] == "tokens_day"
    assert refused.json()["budget"]["spent"] == 6
    secure.__exit__()  # a stop flushes the ledger: a row the refusal wrote would be there now
    assert sorted(r[3] for r in ledger_rows(tmp_path, "key_name = 'wordy'")) == [3, 3]


def test_key_lifecycle_through_the_cli(secure: Any, tmp_path: Path) -> None:
    """create -> use -> rotate -> the old secret is refused, the new one works -> revoke."""
    config = write_config(tmp_path, auth_config(Path(secure.engine.config.models[0].path),
                                                tmp_path), "cli.yaml")  # fmt: skip
    runner = CliRunner()
    created = runner.invoke(main, ["keys", "create", "--name", "team-a", "--rps", "100",
                                   "--config", str(config)])  # fmt: skip
    assert created.exit_code == 0, created.output
    old = created.stdout.strip().splitlines()[-1]
    assert old.startswith("frg_")
    eventually(lambda: predict(secure, old).status_code == 200, "key 'team-a' to load")

    rotated = runner.invoke(main, ["keys", "rotate", "team-a", "--config", str(config)])
    assert rotated.exit_code == 0
    new = rotated.stdout.strip().splitlines()[-1]
    assert new != old
    eventually(lambda: predict(secure, old).status_code == 401, "the old secret refused")
    assert predict(secure, new).status_code == 200

    listed = runner.invoke(main, ["keys", "list", "--config", str(config)])
    assert "team-a" in listed.output and new not in listed.output and old not in listed.output
    assert runner.invoke(main, ["keys", "revoke", "team-a", "--config", str(config)]).exit_code == 0
    eventually(lambda: predict(secure, new).status_code == 401, "the revoked key to be refused")
    actions = [(e.action, e.target) for e in AuditLog(tmp_path / "ledger.db").entries()]
    assert ("key.create", "team-a") in actions and ("key.rotate", "team-a") in actions
    assert ("key.revoke", "team-a") in actions and ("model.load", "digits:1") in actions


def test_admin_api_manages_keys_and_audits_who_did_it(secure: Any, tmp_path: Path) -> None:
    admin = new_key(tmp_path, "ops", "admin")
    url = f"{secure.url}/admin/keys"
    eventually(lambda: httpx.get(url, headers=bearer(admin)).status_code == 200, "key 'ops'")
    spec = {"name": "svc", "role": "user", "tier": "pro", "rps": 10}
    created = httpx.post(url, headers=bearer(admin), json=spec)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert predict(secure, secret).status_code == 200  # reloaded at once, no poll needed
    listed = httpx.get(url, headers=bearer(admin)).json()
    assert {k["name"] for k in listed} == {"ops", "svc"}
    assert all("secret" not in k and "digest" not in k for k in listed)
    bad = httpx.post(url, headers=bearer(admin), json={"name": "x", "role": "root"})
    assert bad.status_code == 400 and bad.json()["field"] == "role"
    revoked = httpx.post(f"{url}/svc/revoke", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert predict(secure, secret).status_code == 401
    assert httpx.post(f"{url}/ghost/revoke", headers=bearer(admin)).status_code == 404
    user = new_key(tmp_path, "plain", "user")
    eventually(lambda: httpx.get(url, headers=bearer(user)).status_code == 403, "key 'plain'")
    entries = AuditLog(tmp_path / "ledger.db").entries()
    assert [(e.actor, e.action, e.target) for e in entries if e.action.startswith("key.")] == [
        ("ops", "key.create", "svc"), ("ops", "key.revoke", "svc")
    ]  # fmt: skip
    assert AuditLog(tmp_path / "ledger.db").verify().ok


def test_secrets_never_reach_logs_metrics_or_the_ledger(
    secure: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = new_key(tmp_path, "ops", "admin")
    user = new_key(tmp_path, "app", "user", rps=1)
    eventually(lambda: predict(secure, user).status_code == 200, "key 'app' to load")
    predict(secure, user)  # rate limited
    predict(secure, user[:-2] + "zz")  # a wrong secret, close to a real one
    made = httpx.post(f"{secure.url}/admin/keys", headers=bearer(admin), json={"name": "n"})
    rotated = httpx.post(f"{secure.url}/admin/keys/n/rotate", headers=bearer(admin))
    metrics = httpx.get(f"{secure.url}/metrics", headers=bearer(admin)).text
    secure.__exit__()  # a stop flushes the ledger and audit log: all they will ever hold
    secrets = [admin, user, made.json()["secret"], rotated.json()["secret"]]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("*.db*"))
    for secret in secrets:
        assert secret not in caplog.text and secret not in metrics
        assert secret.encode() not in stored and secret[4:20].encode() not in stored
    assert "app" in caplog.text or ledger_rows(tmp_path, "key_name = 'app'")


def test_user_scoped_cache_never_crosses_keys(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """With auth, the cache's user is the key: another key's header cannot reach its entries."""
    data = auth_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"scope": "user"}
    server = serve(parse_config(data))
    a, b = new_key(tmp_path, "a", "user"), new_key(tmp_path, "b", "user")

    def call(secret: str) -> str:
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                       json={"instances": [[1.0] * 64]},
                       headers=bearer(secret) | {"x-frugal-user": "alice"})  # fmt: skip
        assert r.status_code == 200
        return r.headers["x-frugal-cache"]

    eventually(lambda: predict(server, b).status_code == 200, "key 'b' to load")
    assert [call(a), call(a), call(b), call(b)] == ["miss", "hit", "miss", "hit"]


def test_capture_stores_redacted_payloads_only_when_asked(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    data = auth_config(digits_model_file, tmp_path)
    data["endpoints"][1]["capture"] = {"redact_patterns": [r"secret-\w+"], "retention_days": 1}
    server = serve(parse_config(data))
    secret = new_key(tmp_path, "app", "user")
    # digits: no capture
    eventually(lambda: predict(server, secret).status_code == 200, "key 'app' to load")
    assert predict(server, secret, "words", instances=["my secret-sauce"]).status_code == 200

    def payloads() -> list[tuple[Any, ...]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return db.execute("SELECT endpoint, key_name, request, response, expires - ts "
                              "FROM payloads").fetchall()  # fmt: skip

    rows = eventually(payloads, "the captured payload's row")
    assert rows == [("words", "app", '{"instances":["my [redacted]"]}',
                     '{"predictions":[2]}', pytest.approx(86400))]  # fmt: skip


def test_without_auth_admin_routes_refuse_other_hosts_and_keys_are_off(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    assert predict(server, None).status_code == 200  # loopback, no key needed
    assert httpx.get(f"{server.url}/admin/keys").status_code == 404
    assert server.app.admission.admit(None, "call") is not None
    with pytest.raises(Exception, match="loopback"):
        server.app.admission.admit(None, "admin", client="10.1.2.3")


def test_a_key_for_a_config_without_auth_is_a_clear_cli_error(
    digits_model_file: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    result = CliRunner().invoke(main, ["keys", "create", "--name", "x", "--config", str(config)])
    assert result.exit_code == 2 and "no `auth` section" in result.output
    assert "Traceback" not in result.output


def test_budgets_need_the_ledger(digits_model_file: Path, tmp_path: Path) -> None:
    data = digits_config(digits_model_file, tmp_path, instance=TEST_INSTANCE)
    data["auth"] = {"keys": "k.db"}
    data["ledger"]["enabled"] = False
    with pytest.raises(Exception, match=r"ledger.enabled: auth needs the ledger"):
        parse_config(data, file="f.yaml")
