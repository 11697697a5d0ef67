"""The API against malformed input: every bad request is a 4xx with a JSON error.

Two parts: explicit hostile bodies (malformed JSON, huge numbers, NaN, deep nesting, wrong
content types, empty bodies, invalid UTF-8), and schemathesis generating requests from the
served /openapi.json against a live server with auth on, checking for 5xx, undocumented
statuses, responses that break the schema, and requests that violate it yet are accepted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.access import KeyStore
from frugal.config import parse_config
from tests.conftest import ServerProcess, digits_config, write_config

ROW = [0.0] * 64


@pytest.fixture
def fuzzed(serve: Any, digits_model_file: Path, tmp_path: Path) -> tuple[Any, str]:
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"ttl_s": 60}
    data["models"].append(data["models"][0] | {"version": "2"})  # a split for the route admin
    data["endpoints"].append({"name": "split", "route": {"split": [
        {"model": "digits:1", "weight": 90}, {"model": "digits:2", "weight": 10}]}})  # fmt: skip
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    _, secret = KeyStore(tmp_path / "keys.db").create("fuzzer", "admin")
    return serve(parse_config(data)), secret


HOSTILE: list[tuple[str, bytes, dict[str, str], int]] = [
    ("malformed JSON", b'{"instances": [[1, 2', {}, 400),
    ("trailing garbage", b'{"instances": []} x', {}, 400),
    ("empty body", b"", {}, 400),
    ("JSON null", b"null", {}, 400),
    ("NaN literal", b'{"instances": [[NaN' + b", 0" * 63 + b"]]}", {}, 400),
    ("Infinity literal", b'{"instances": [[Infinity' + b", 0" * 63 + b"]]}", {}, 400),
    ("number over FP32", b'{"instances": [[1e300' + b", 0" * 63 + b"]]}", {}, 400),
    ("integer over 64 bits", b'{"instances": [[' + b"9" * 40 + b", 0" * 63 + b"]]}", {}, 400),
    ("deeply nested", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400),
    ("invalid UTF-8", b'{"instances": ["\xff\xfe"]}', {}, 400),
    ("text/plain", b'{"instances": [[0]]}', {"content-type": "text/plain"}, 415),
    ("form", b"instances=1", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ("wrong shape", b'{"instances": [[1, 2, 3]]}', {}, 400),
    ("strings for numbers", b'{"instances": [["a"' + b', "b"' * 63 + b"]]}", {}, 400),
    ("instances not a list", b'{"instances": {"a": 1}}', {}, 400),
    ("booleans for numbers", b'{"instances": [[true' + b", 0" * 63 + b"]]}", {}, 400),
]


@pytest.mark.parametrize(("case", "body", "headers", "status"), HOSTILE,
                         ids=[h[0] for h in HOSTILE])  # fmt: skip
def test_hostile_bodies_get_a_4xx_json_error(
    fuzzed: tuple[Any, str], case: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    server, secret = fuzzed
    auth = {"authorization": f"Bearer {secret}"}
    for path in ("/v1/endpoints/digits/predict", "/v2/models/digits/infer"):
        r = httpx.post(server.url + path, content=body, headers=auth | headers, timeout=30)
        expected = status if path.startswith("/v1") or status == 415 else r.status_code
        assert r.status_code == expected and 400 <= r.status_code < 500, (case, path, r.text)
        error = r.json()
        assert error["error"] and error["request_id"] == r.headers["x-request-id"]
    metadata = httpx.get(f"{server.url}/v2/models/digits", headers=auth)
    assert metadata.status_code == 200  # the server is still well


def test_v2_hostile_tensors_name_the_field(fuzzed: tuple[Any, str]) -> None:
    server, secret = fuzzed
    auth = {"authorization": f"Bearer {secret}"}
    cases = [
        ({"inputs": [{"name": "pixels", "shape": [1], "datatype": {}, "data": [[]]}]},
         "inputs[0].datatype"),
        ({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                      "data": [1e300] * 64}]}, "inputs[0].data"),
        ({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [0] * 3}]},
         "inputs[0].data"),
    ]  # fmt: skip
    for body, field in cases:
        r = httpx.post(f"{server.url}/v2/models/digits/infer", json=body, headers=auth)
        assert r.status_code == 400 and r.json()["field"] == field, r.text


SCHEMATHESIS_CONFIG = """
# A body over server.max_body_bytes is refused with 413 before it is parsed: a rejection too.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 431]

# Key revocation and rotation would lock the fuzzer out of its own admin key; they have
# their own tests (test_auth.py).
[[operations]]
include-path-regex = "^/admin/keys/"
enabled = false
"""


def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """Against `frugal serve` in its own process, as deployed (pytest turns numpy's warnings
    into errors in this process; a served model does not)."""
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"ttl_s": 60}
    data["models"].append(data["models"][0] | {"version": "2"})  # a split for the route admin
    data["endpoints"].append({"name": "split", "route": {"split": [
        {"model": "digits:1", "weight": 90}, {"model": "digits:2", "weight": 10}]}})  # fmt: skip
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    control = {"endpoint": "digits", "ttl_s": {"min": 10, "max": 600}, "staleness_budget_s": 300}
    data["controller"] = {"cache": [control]}  # for GET /admin/controller
    _, secret = KeyStore(tmp_path / "keys.db").create("fuzzer", "admin")
    with ServerProcess(write_config(tmp_path, data)) as server:
        done = run_schemathesis(server.url, secret, tmp_path)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary + server.log_text()[-3000:]
    # 16 + chat and embeddings (no upstream) + version 2's metadata, ready and infer routes, the
    # split's predict, GET/POST of its route admin, the policy controller's GET, and each
    # endpoint's feedback (404 here: no drift check), and the dashboard's page, files and stats
    assert "Tested: 30" in summary, summary
    assert "Traceback" not in server.log_text()


def run_schemathesis(url: str, secret: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    # positive_data_acceptance is off: a v2 tensor's shape must match its data's length, which
    # JSON Schema cannot say, so schema-valid requests can rightly be refused with a 400.
    return subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
         f"{url}/openapi.json", "-H", f"Authorization: Bearer {secret}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", "40", "--seed", "20261123", "--no-color",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_every_served_route_is_in_the_openapi_document(serve: Any, fuzzed: tuple[Any, str]) -> None:
    """A route added without documenting it fails here (and the fuzzer would never reach it)."""
    import re

    server, _ = fuzzed
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for route in server.app.starlette.routes:
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", route.path) + "$"
        documented = [p for p in paths if re.match(pattern, p)]
        assert documented, f"{route.path} is served but not in /openapi.json"
        for method in route.methods or ():
            if method != "HEAD":
                assert any(method.lower() in paths[p] for p in documented), (route.path, method)
