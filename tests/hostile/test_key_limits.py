"""API keys against a real server: limits stay within documented bounds, a stored rate of any
size gives a short Retry-After, an endpoint list grants on v2 only the versions its endpoints
route to, and a request with two Authorization headers is refused on every path.

Issue 14, findings 5 (admin limits, rate limiter), 6 (endpoint grants on v2) and 9 (duplicate
Authorization headers); docs/security.md.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.access import (
    BUDGET_USD_DAY_MAX,
    MAX_WAIT_S,
    RPS_MAX,
    RPS_MIN,
    TOKENS_DAY_MAX,
    KeyStore,
    RateLimiter,
)
from frugal.cli import main
from frugal.config import parse_config
from tests.conftest import ServerInThread, digits_config, write_config
from tests.llm_double import LLMDouble

ROW = [0.0] * 64
INFER = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": ROW}]}


def keyed_config(digits_model_file: Path, tmp_path: Path) -> dict[str, Any]:
    """digits:1 and digits:2; endpoint ``digits`` pinned to digits:1, ``canary`` a split of
    both; ``other`` another model with an endpoint of its own; auth on."""
    data = digits_config(digits_model_file, tmp_path)
    first = data["models"][0]
    data["models"] += [first | {"version": "2"}, first | {"name": "other"}]
    data["endpoints"] = [
        {"name": "digits", "model": "digits:1"},
        {"name": "canary", "route": {"split": [{"model": "digits:1", "weight": 50},
                                               {"model": "digits:2", "weight": 50}]}},
        {"name": "other", "model": "other"},
    ]  # fmt: skip
    data["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    return data


@pytest.fixture
def keyed(serve: Any, digits_model_file: Path, tmp_path: Path) -> Any:
    """The server, with keys: ``ops`` (admin), ``pinned`` (endpoint digits), ``canary``
    (endpoint canary), ``both`` (digits and other), ``nothing`` (an empty list)."""
    store = KeyStore(tmp_path / "keys.db")
    secrets = {"ops": store.create("ops", "admin")[1]}
    for name, endpoints in (("pinned", ["digits"]), ("canary", ["canary"]),
                            ("both", ["digits", "other"]), ("nothing", [])):  # fmt: skip
        secrets[name] = store.create(name, "user", endpoints=endpoints)[1]
    server = serve(parse_config(keyed_config(digits_model_file, tmp_path)))
    server.secrets = secrets
    return server


def bearer(server: Any, name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {server.secrets[name]}"}


def infer(server: Any, key: str, model: str = "digits", version: str | None = None) -> Any:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return httpx.post(server.url + path, json=INFER, headers=bearer(server, key), timeout=30)


def refused_count(server: Any, reason: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=bearer(server, "ops")).text
    found = re.search(rf'^frugal_refused_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# ---- finding 6: what an endpoint list grants on v2 ---------------------------------------------


def test_a_key_pinned_to_an_endpoint_calls_only_that_endpoints_version_on_v2(keyed: Any) -> None:
    """``digits`` routes to digits:1, so its key may call digits:1 on v2 and nothing else: not
    digits:2 by its version, nor by the unversioned route (which answers with digits:2)."""
    ok = infer(keyed, "pinned", version="1")
    assert ok.status_code == 200 and ok.json()["model_version"] == "1", ok.text
    before = refused_count(keyed, "forbidden")
    for version in ("2", None):
        r = infer(keyed, "pinned", version=version)
        assert r.status_code == 403, r.text
        error = r.json()
        assert error["field"] == "version"
        assert "digits:2" in error["error"] and "digits:1" in error["error"]
        assert error["hint"] == "call /v2/models/digits/versions/1/infer"
        assert r.headers["x-request-id"] == error["request_id"]
    assert refused_count(keyed, "forbidden") == before + 2
    other = infer(keyed, "pinned", model="other")
    assert other.status_code == 403 and other.json()["field"] == "model", other.text
    predicted = httpx.post(f"{keyed.url}/v1/endpoints/digits/predict",
                           json={"instances": [ROW]}, headers=bearer(keyed, "pinned"))  # fmt: skip
    assert predicted.status_code == 200 and predicted.headers["x-frugal-model"] == "digits:1"


def test_an_endpoint_list_grants_every_version_its_routes_call(keyed: Any) -> None:
    """A split grants each of its versions; a list grants the union of its endpoints'; an
    empty list grants nothing; an admin and a key with no list call every version."""
    for version in ("1", "2", None):
        assert infer(keyed, "canary", version=version).status_code == 200
        assert infer(keyed, "ops", version=version).status_code == 200
    assert infer(keyed, "canary", model="other").status_code == 403
    assert infer(keyed, "both", version="1").status_code == 200
    assert infer(keyed, "both", model="other").status_code == 200
    assert infer(keyed, "both", version="2").status_code == 403
    nothing = infer(keyed, "nothing", version="1")
    assert nothing.status_code == 403 and "no model version" in nothing.json()["error"]
    missing = infer(keyed, "pinned", version="9")  # no such version: 404, as for any caller
    assert missing.status_code == 404, missing.text


def test_refused_grants_write_no_ledger_row(keyed: Any, tmp_path: Path) -> None:
    """A 403 on v2 is an admission refusal: no model ran, no row, nothing charged."""
    assert infer(keyed, "pinned", version="2").status_code == 403
    assert infer(keyed, "pinned", version="1").status_code == 200  # its row follows the 403's
    keyed.__exit__()  # a stop flushes the ledger
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT status, key_name FROM requests").fetchall()
    assert rows == [(200, "pinned")]


# ---- finding 9: two Authorization headers -------------------------------------------------------


ROUTES = [
    ("POST", "/v1/endpoints/digits/predict", {"instances": [ROW]}),
    ("POST", "/v2/models/digits/versions/1/infer", INFER),
    ("GET", "/v2/models/digits", None),
    ("GET", "/metrics", None),
    ("GET", "/admin/keys", None),
    ("POST", "/v1/chat/completions", {"model": "x", "messages": [{"role": "user"}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
def test_two_authorization_headers_are_a_400_on_every_path(
    keyed: Any, method: str, path: str, body: Any
) -> None:
    """The inference path read the last header, Starlette's routes the first: with an admin
    key and a bad one, which one counted depended on the route. Now neither counts."""
    admin = f"Bearer {keyed.secrets['ops']}"
    for headers in ([("authorization", admin), ("authorization", "Bearer frg_wrong")],
                    [("authorization", "Bearer frg_wrong"), ("authorization", admin)],
                    [("authorization", admin), ("authorization", admin)]):  # fmt: skip
        r = httpx.request(method, keyed.url + path, json=body, headers=headers, timeout=30)
        assert r.status_code == 400, (path, r.text)
        error = r.json()
        assert (
            error["field"] == "authorization" and error["request_id"] == r.headers["x-request-id"]
        )
    single = httpx.request(method, keyed.url + path, json=body,
                           headers={"authorization": admin}, timeout=30)  # fmt: skip
    assert single.status_code != 400 or path == "/v1/chat/completions", single.text


def test_the_starlette_mount_refuses_two_authorization_headers_too(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """A caller that serves ``.starlette`` alone reaches inference through Starlette's
    headers, not Exchange.from_scope: the same refusal holds there."""
    secret = KeyStore(tmp_path / "keys.db").create("ops", "admin")[1]
    server = ServerInThread(parse_config(keyed_config(digits_model_file, tmp_path)))
    server.server.config.app = server.app.starlette  # uvicorn loads it when it starts
    with server:
        url = f"{server.url}/v1/endpoints/digits/predict"
        headers = [("authorization", f"Bearer {secret}"), ("authorization", "Bearer frg_x")]
        r = httpx.post(url, json={"instances": [ROW]}, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "authorization", r.text
        ok = httpx.post(url, json={"instances": [ROW]},
                        headers={"authorization": f"Bearer {secret}"})  # fmt: skip
        assert ok.status_code == 200, ok.text


# ---- finding 5: limits within bounds -----------------------------------------------------------

OUT_OF_BOUNDS = [
    ("tokens_day", 2**63),
    ("tokens_day", 2**64 - 1),
    ("tokens_day", TOKENS_DAY_MAX + 1),
    ("tokens_day", 1.5),
    ("tokens_day", 0),
    ("budget_usd_day", 2**63),
    ("budget_usd_day", BUDGET_USD_DAY_MAX * 10),
    ("budget_usd_day", 1e300),
    ("budget_usd_day", 0),
    ("rps", 1e-320),
    ("rps", 1e-300),
    ("rps", RPS_MIN / 2),
    ("rps", RPS_MAX * 2),
    ("rps", 2**63),
    ("rps", -1),
]


def test_the_admin_api_refuses_limits_out_of_bounds_naming_them(keyed: Any) -> None:
    """A tokens_day of 2**63 overflowed SQLite (a 500); an rps of 1e-320 was stored and broke
    every later refusal. Each is a 400 naming its field; the bounds themselves are accepted."""
    url = f"{keyed.url}/admin/keys"
    for i, (field, value) in enumerate(OUT_OF_BOUNDS):
        r = httpx.post(url, json={"name": f"k{i}", field: value}, headers=bearer(keyed, "ops"))
        assert r.status_code == 400, (field, value, r.text)
        assert r.json()["field"] == field, r.text
    edges = {"rps": RPS_MIN, "budget_usd_day": BUDGET_USD_DAY_MAX, "tokens_day": TOKENS_DAY_MAX}
    r = httpx.post(url, json={"name": "edges"} | edges, headers=bearer(keyed, "ops"))
    assert r.status_code == 201, r.text
    assert {k: r.json()[k] for k in edges} == edges
    top = httpx.post(url, json={"name": "fast", "rps": RPS_MAX, "budget_usd_day": 1e-12},
                     headers=bearer(keyed, "ops"))  # fmt: skip
    assert top.status_code == 201, top.text
    assert httpx.post(url, json={"name": "t", "tier": "x" * 65},
                      headers=bearer(keyed, "ops")).json()["field"] == "tier"  # fmt: skip


@pytest.mark.parametrize(("option", "value", "field"), [
    ("--tokens-day", "9223372036854775808", "tokens_day"),
    ("--tokens-day", "inf", "tokens_day"),
    ("--tokens-day", "nan", "tokens_day"),
    ("--tokens-day", "2.5", "tokens_day"),
    ("--rps", "1e-320", "rps"),
    ("--rps", "nan", "rps"),
    ("--budget-usd-day", "1e300", "budget_usd_day"),
])  # fmt: skip
def test_the_cli_refuses_limits_out_of_bounds_with_exit_2(
    digits_model_file: Path, tmp_path: Path, option: str, value: str, field: str
) -> None:
    """No traceback: a message naming the limit and its bounds, exit 2; no key is stored."""
    config = write_config(tmp_path, keyed_config(digits_model_file, tmp_path))
    result = CliRunner().invoke(main, ["keys", "create", "--name", "big", option, value,
                                       "--config", str(config)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"error: {field} must be" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert KeyStore(tmp_path / "keys.db").list() == []


# ---- finding 5: whatever rate is stored, refusals are 429 with a short Retry-After -------------


def test_a_stored_rate_of_any_size_refuses_with_a_retry_after_of_at_most_a_day(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """Rates the API now refuses can still be in a keys file (edited by hand, or written by an
    older frugal): 1e-320 made each refusal a 500, 1e-300 a 300-digit Retry-After, 0 a
    division by zero. Each now refuses with 429 and Retry-After of at most 86400 seconds."""
    store = KeyStore(tmp_path / "keys.db")
    rates = {"tiny": 1e-320, "small": 1e-300, "zero": 0.0, "negative": -1.0, "slow": 0.01}
    secrets = {name: store.create(name, "user")[1] for name in rates}
    with sqlite3.connect(tmp_path / "keys.db") as db:
        db.executemany("UPDATE keys SET rps = ? WHERE name = ?",
                       [(rps, name) for name, rps in rates.items()])  # fmt: skip
    server = serve(parse_config(keyed_config(digits_model_file, tmp_path)))
    url = f"{server.url}/v1/endpoints/digits/predict"
    for name, rps in rates.items():
        answers = [httpx.post(url, json={"instances": [ROW]}, timeout=30,
                              headers={"authorization": f"Bearer {secrets[name]}"})
                   for _ in range(2)]  # fmt: skip
        expected = [429, 429] if rps <= 0 else [200, 429]
        assert [a.status_code for a in answers] == expected, (name, answers[-1].text)
        retry_after = int(answers[-1].headers["retry-after"])
        assert 1 <= retry_after <= MAX_WAIT_S, (name, retry_after)
        if name != "slow":
            assert retry_after == MAX_WAIT_S, name
        else:
            assert 1 < retry_after <= 100  # a token at 0.01/s: up to 100 s away


def test_the_rate_limiter_waits_are_finite_and_capped_for_any_rate() -> None:
    """The limiter alone, on a clock the test moves: every wait is 0 or in (0, a day]."""
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for rps in (1e-320, 5e-324, 1e-300, 1e-6, 0.001, 1.0, 1e6, 1e300, float("inf"),
                0.0, -1.0, float("nan"), float("-inf")):  # fmt: skip
        waits = [limiter.take(f"k{rps}", rps) for _ in range(3)]
        now[0] += 0.5
        assert all(w == 0.0 or 0 < w <= MAX_WAIT_S for w in waits), (rps, waits)
        if not rps > 0:
            assert waits == [MAX_WAIT_S] * 3, rps
    assert limiter.take("exact", 0.5) == 0.0
    assert limiter.take("exact", 0.5) == pytest.approx(2.0)  # one token at 0.5/s


def test_an_upstream_chat_is_refused_for_two_authorization_headers_before_the_upstream(
    serve: Any, tmp_path: Path
) -> None:
    """The LLM routes read Authorization through Starlette: refused before the body is sent
    on, so the upstream never sees the request."""
    with LLMDouble() as upstream:
        data = {
            "instance": {"price_usd_per_hour": 0.36, "slots": 2},
            "models": [{"name": "gpt", "runtime": "openai", "upstream": {
                "base_url": upstream.url, "model": "m", "input_usd_per_1m": 1.0,
                "output_usd_per_1m": 1.0, "timeout_s": 5.0}}],
            "endpoints": [{"name": "chat", "model": "gpt"}],
            "ledger": {"path": str(tmp_path / "ledger.db")},
            "auth": {"keys": str(tmp_path / "keys.db")},
        }  # fmt: skip
        secret = KeyStore(tmp_path / "keys.db").create("app", "user")[1]
        server = serve(parse_config(data))
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        headers = [("authorization", f"Bearer {secret}"), ("authorization", f"Bearer {secret}")]
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "authorization", r.text
        assert upstream.calls == []
        ok = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                        headers={"authorization": f"Bearer {secret}"})  # fmt: skip
        assert ok.status_code == 200 and len(upstream.calls) == 1, ok.text
