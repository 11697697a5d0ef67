"""Client input against a real server: nothing a client sends reaches a 500, and a 500 that
still happens (here: an operator's disk changed under the server) is answered without a
traceback, counted on /metrics and booked in the ledger.

Issue 14, finding 5: lists nested past the documented depth in ``instances``, v2 ``data`` and
chat messages; v2 shapes whose product overflows; admin bodies past their 64 KiB cap; and a
fuzz over JSON shapes on every route these touch (docs/protocols.md, "Input limits").
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frugal.access import KeyStore
from frugal.config import parse_config
from frugal.runtimes import MAX_NESTING_DEPTH
from frugal.serving.admin import ADMIN_MAX_BODY_BYTES
from frugal.serving.openai_api import MAX_FIELD_DEPTH
from tests.conftest import digits_config
from tests.llm_double import LLMDouble
from tests.waiting import eventually

ROW = [0.0] * 64


@pytest.fixture
def upstream() -> Iterator[LLMDouble]:
    with LLMDouble() as double:
        yield double


@pytest.fixture
def hostile(serve: Any, digits_model_file: Path, tmp_path: Path, upstream: LLMDouble) -> Any:
    """digits (schema [-1, 64]), words (a python model with no schema), an LLM upstream, a
    split for the route admin, ``kept`` (capturing every payload); auth on with one admin key
    (``server.secret``)."""
    data = digits_config(digits_model_file, tmp_path)
    data["models"] += [
        data["models"][0] | {"version": "2"},
        {"name": "words", "runtime": "python", "factory": "tests.serving.test_auth:make_words"},
        {"name": "gpt", "runtime": "openai", "upstream": {
            "base_url": upstream.url, "model": "gpt-upstream", "input_usd_per_1m": 1.0,
            "output_usd_per_1m": 2.0, "timeout_s": 5.0}},
    ]  # fmt: skip
    data["endpoints"] += [
        {"name": "words", "model": "words"},
        {"name": "kept", "model": "digits:1", "capture": {"sample": 1.0}},
        {"name": "chat", "model": "gpt"},
        {"name": "split", "route": {"split": [{"model": "digits:1", "weight": 50},
                                              {"model": "digits:2", "weight": 50}]}},
    ]  # fmt: skip
    (tmp_path / "keys").mkdir()
    data["auth"] = {"keys": str(tmp_path / "keys" / "keys.db")}
    _, secret = KeyStore(tmp_path / "keys" / "keys.db").create("ops", "admin")
    server = serve(parse_config(data))
    server.secret = secret
    return server


def auth(server: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {server.secret}"}


def nested(depth: int, leaf: str = "0.0") -> bytes:
    """``depth`` lists, one inside the other, around ``leaf``: written as text, since building
    it in Python and encoding it would hit the very limits under test."""
    return b"[" * depth + leaf.encode() + b"]" * depth


def post(server: Any, path: str, body: bytes, **headers: str) -> httpx.Response:
    headers = auth(server) | {"content-type": "application/json"} | headers
    return httpx.post(server.url + path, content=body, headers=headers, timeout=30)


def refused(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    """The answer is ``status`` with a JSON error naming ``field`` and the request's id."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert error["field"] == field, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# ---- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 400, 1000])
def test_instances_nested_past_the_limit_are_a_400_naming_the_instance(
    hostile: Any, depth: int
) -> None:
    """Past 32 levels an instance, or a v2 tensor's data, is refused before any recursion
    (326 levels used to exhaust Python's recursion limit: a 500 and a traceback)."""
    for endpoint in ("digits", "words"):  # a declared schema, and none (items pass as sent)
        r = post(hostile, f"/v1/endpoints/{endpoint}/predict",
                 b'{"instances": [' + nested(depth) + b"]}")  # fmt: skip
        error = refused(r, 400, "instances[0]")
        assert f"nested more than {MAX_NESTING_DEPTH} levels" in error["error"]
    tensor = b'{"name": "pixels", "datatype": "%s", "shape": [1, 64], "data": %s}'
    for model, datatype, leaf in (
        ("digits", b"FP32", "0.0"),
        ("words", b"FP32", "0.0"),
        ("words", b"BOOL", "true"),
        ("words", b"BYTES", '"a"'),
    ):
        body = b'{"inputs": [' + tensor % (datatype, nested(depth, leaf)) + b"]}"
        error = refused(post(hostile, f"/v2/models/{model}/infer", body), 400, "inputs[0].data")
        assert f"nested more than {MAX_NESTING_DEPTH} levels" in error["error"]


def test_at_the_limit_nesting_is_judged_by_the_schema_as_before(hostile: Any) -> None:
    """32 levels pass the depth check; the schema then refuses the shape, naming the same
    field (the limit is the documented 32, not one less)."""
    r = post(hostile, "/v1/endpoints/digits/predict",
             b'{"instances": [' + nested(MAX_NESTING_DEPTH) + b"]}")  # fmt: skip
    error = refused(r, 400, "instances[0]")
    assert "nested" not in error["error"]
    ok = httpx.post(f"{hostile.url}/v1/endpoints/digits/predict", json={"instances": [ROW]},
                    headers=auth(hostile))  # fmt: skip
    assert ok.status_code == 200


@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_chat_and_embeddings_fields_nested_deep_are_a_400_and_never_reach_the_upstream(
    hostile: Any, upstream: LLMDouble, depth: int
) -> None:
    """Content nested 256+ deep could not be written upstream (orjson stops at 254): a 500.
    Now every field is held to 64 levels, named down to the message's key."""
    cases = [
        ("/v1/chat/completions",
         b'{"model": "chat", "messages": [{"role": "user", "content": %s}]}',
         "messages[0].content"),
        ("/v1/chat/completions",
         b'{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "tools": %s}',
         "tools"),
        ("/v1/embeddings", b'{"model": "gpt", "input": %s}', "input"),
    ]  # fmt: skip
    for path, template, field in cases:
        r = post(hostile, path, template % nested(depth, '"x"'))
        error = refused(r, 400, field)
        assert f"nested more than {MAX_FIELD_DEPTH} levels" in error["error"]
    assert upstream.calls == []
    fine = post(hostile, "/v1/chat/completions", b'{"model": "chat", "messages": '
                b'[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}')  # fmt: skip
    assert fine.status_code == 200 and len(upstream.calls) == 1


def test_a_capturing_endpoint_refuses_a_body_it_could_not_store_before_the_model_runs(
    hostile: Any, tmp_path: Path
) -> None:
    """A captured body is written back as JSON after the answer: a field nested 260 deep
    failed there (orjson stops at 254), a 500 after the 200's ledger row was written. Every
    field of such a body is now held to the instances' depth, before anything runs."""
    for depth in (MAX_NESTING_DEPTH + 2, 260, 1000):
        body = b'{"instances": [%s], "extra": %s}' % (str(ROW).encode(), nested(depth))
        r = post(hostile, "/v1/endpoints/kept/predict", body, **{"x-request-id": f"kept-{depth}"})
        refused(r, 400, "extra")
    ok = post(hostile, "/v1/endpoints/kept/predict",
              b'{"instances": [%s], "extra": %s}' % (str(ROW).encode(), nested(3)),
              **{"x-request-id": "kept-ok"})  # fmt: skip
    assert ok.status_code == 200, ok.text

    def payloads() -> list[str]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return [r[0] for r in db.execute("SELECT request_id FROM payloads").fetchall()]

    eventually(lambda: payloads() == ["kept-ok"], "the one captured payload")
    assert all(s != 200 for s in ledger_status(tmp_path, "kept-260"))


# ---- v2 shapes ---------------------------------------------------------------------------------

SHAPES = {
    "product wraps int64 to 0": ([2**32, 2**32], []),
    "product past 2**63": ([2**62, 2**62, 4], [0.0]),
    "product past the tensor limit": ([2**20, 2**20], [0.0] * 64),
    "65 dimensions": ([1] * 65, [0.0]),
    "a zero dimension after a huge batch": ([2**32, 0], []),
}


@pytest.mark.parametrize("case", SHAPES)
def test_v2_shapes_that_cannot_match_any_data_are_a_400_naming_the_shape(
    hostile: Any, case: str
) -> None:
    """The shape is checked with exact integers before numpy sees it: numpy's product of
    [2**32, 2**32] is 0, which matched empty data and crashed in reshape (a 500); a zero
    dimension after a 2**32 batch would have made 4e9 empty rows."""
    shape, data = SHAPES[case]
    body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": shape, "data": data}]}
    r = httpx.post(f"{hostile.url}/v2/models/digits/infer", json=body, headers=auth(hostile))
    refused(r, 400, "inputs[0].shape")


# ---- admin bodies ------------------------------------------------------------------------------


def test_admin_bodies_past_64_kib_are_a_413_naming_the_body(hostile: Any) -> None:
    """Declared too long: refused from Content-Length. Sent chunked (no length): refused once
    the cap is passed, with the rest of the 8 MB never read. At the cap: judged as JSON."""
    big = b'{"name": "' + b"a" * 8_000_000 + b'"}'
    for path in ("/admin/keys", "/admin/cache/invalidate", "/admin/endpoints/split/route"):
        refused(post(hostile, path, big), 413, "body")

    # Chunked, with no Content-Length, and the body never ended: an answer at all means the
    # server stopped reading at the cap instead of waiting for (and buffering) the rest.
    with socket.create_connection(("127.0.0.1", hostile.port), timeout=10) as sock:
        sock.sendall(b"POST /admin/keys HTTP/1.1\r\nhost: frugal\r\n"
                     b"authorization: Bearer %s\r\ncontent-type: application/json\r\n"
                     b"transfer-encoding: chunked\r\n\r\n" % hostile.secret.encode())  # fmt: skip
        piece = b" " * 65536
        for _ in range(2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        answer = b""
        while b'"field":"body"' not in answer:
            received = sock.recv(65536)
            if not received:
                break
            answer += received
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"field":"body"' in answer

    at_cap = b'{"name": "' + b"a" * (ADMIN_MAX_BODY_BYTES - 12) + b'"}'
    assert len(at_cap) == ADMIN_MAX_BODY_BYTES
    refused(post(hostile, "/admin/keys", at_cap), 400, "name")  # read whole, then judged


def test_split_weights_whose_sum_overflows_are_a_400(hostile: Any) -> None:
    """Each weight finite, their sum not: every request went to the split's last version."""
    url = f"{hostile.url}/admin/endpoints/split/route"
    huge = {"weights": {"digits:1": 1e308, "digits:2": 1e308}}
    error = refused(httpx.post(url, json=huge, headers=auth(hostile)), 400, "weights")
    assert "finite" in error["error"]
    fine = {"weights": {"digits:1": 1e300, "digits:2": 1e300}}
    assert httpx.post(url, json=fine, headers=auth(hostile)).status_code == 200


# ---- a 500 that still happens ------------------------------------------------------------------


def metric(server: Any, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=auth(server)).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def ledger_status(tmp_path: Path, request_id: str) -> list[int]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT status FROM requests WHERE request_id = ?", (request_id,))
        return [r[0] for r in rows.fetchall()]


def test_a_500_on_a_starlette_route_is_answered_counted_and_booked(
    hostile: Any, tmp_path: Path
) -> None:
    """The keys folder is replaced by a file while the server runs (an operator's mistake, not
    a client's): creating a key fails inside the store. The client gets a JSON 500 with its
    request id and no traceback; /metrics counts it and the ledger has its row."""
    labels = {"endpoint": "-", "model": "-", "status": "500"}
    before = metric(hostile, "frugal_requests_total", **labels)
    keys = tmp_path / "keys"
    shutil.move(keys, tmp_path / "keys-moved")
    keys.write_text("not a folder")

    r = httpx.post(f"{hostile.url}/admin/keys", json={"name": "new"},
                   headers=auth(hostile) | {"x-request-id": "crash-1"})  # fmt: skip
    assert r.status_code == 500, r.text
    assert r.json() == {"error": "internal error; the server log has the details",
                        "request_id": "crash-1"}  # fmt: skip
    assert "Traceback" not in r.text
    assert metric(hostile, "frugal_requests_total", **labels) == before + 1
    eventually(lambda: ledger_status(tmp_path, "crash-1") == [500], "the 500's ledger row")

    # A 500 that frugal raises on purpose (the keys file is not a database) is booked too.
    keys.unlink()
    keys.mkdir()
    (keys / "keys.db").write_bytes(b"this is not an SQLite database" * 100)
    r = httpx.get(f"{hostile.url}/admin/keys",
                  headers=auth(hostile) | {"x-request-id": "broken-keys"})  # fmt: skip
    assert r.status_code == 500 and "not a frugal keys database" in r.json()["error"], r.text
    assert metric(hostile, "frugal_requests_total", **labels) == before + 2
    eventually(lambda: ledger_status(tmp_path, "broken-keys") == [500], "the 500's row")


# ---- a fuzz over JSON shapes -------------------------------------------------------------------

# Deeper and wider than tests/strategies.py's json_values (which keys the cache), with numbers
# at the edges of every type a field might be converted to.
edge_numbers = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 1e-320, 1e-300, 1e300,
     1.5, -0.0]
)  # fmt: skip
scalars = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
)  # fmt: skip
json_shapes = st.recursive(
    scalars | edge_numbers,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["name", "role", "data", "shape", "datatype", "text",
                                       "content", "weights", "x"]), children, max_size=4),
    max_leaves=24,
)  # fmt: skip
KEY_NUMBERS = itertools.count()
KEY_FIELDS = ["name", "role", "tier", "endpoints", "rps", "budget_usd_day", "tokens_day"]


def request_bodies() -> st.SearchStrategy[tuple[str, Any]]:
    """(path, body) for every route whose body this change checks."""
    tensor = st.fixed_dictionaries({
        "name": st.sampled_from(["pixels", "x"]) | json_shapes,
        "shape": st.lists(st.integers(0, 2**64 - 1) | edge_numbers, max_size=70) | json_shapes,
        "datatype": st.sampled_from(["FP32", "INT64", "BOOL", "BYTES", "UINT8"]) | json_shapes,
        "data": json_shapes,
    })  # fmt: skip
    names = st.sampled_from(KEY_FIELDS)
    return st.one_of(
        st.tuples(st.sampled_from(["/v1/endpoints/digits/predict", "/v1/endpoints/words/predict",
                                   "/v1/endpoints/split/predict"]),
                  st.fixed_dictionaries({"instances": st.lists(json_shapes, max_size=4)})),
        st.tuples(st.sampled_from(["/v2/models/digits/infer", "/v2/models/words/infer"]),
                  st.fixed_dictionaries({"inputs": st.lists(tensor, min_size=1, max_size=2)})),
        st.tuples(st.just("/v1/chat/completions"), st.fixed_dictionaries({
            "model": st.just("chat"),
            "messages": st.lists(st.fixed_dictionaries(
                {"role": st.just("user"), "content": json_shapes}), min_size=1, max_size=2),
        })),
        st.tuples(st.just("/v1/embeddings"),
                  st.fixed_dictionaries({"model": st.just("gpt"), "input": json_shapes})),
        st.tuples(st.just("/admin/keys"), st.dictionaries(names, json_shapes, max_size=4)),
        st.tuples(st.just("/admin/cache/invalidate"),
                  st.dictionaries(st.sampled_from(["endpoint", "model"]), json_shapes)),
        st.tuples(st.just("/admin/endpoints/split/route"),
                  st.dictionaries(st.sampled_from(["weights", "promote", "rollback"]),
                                  json_shapes, max_size=1)),
    )  # fmt: skip


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=request_bodies())  # fmt: skip
def test_fuzzed_json_shapes_never_get_a_5xx(hostile: Any, request: tuple[str, Any]) -> None:
    """Any JSON shape in any field these routes read is a 2xx or a 4xx with a JSON error."""
    path, body = request
    r = httpx.post(hostile.url + path, json=body, headers=auth(hostile), timeout=30)
    # words declares no inputs, so its items reach it as sent: its own failure on one is the
    # documented 500 naming the model (docs/protocols.md); nothing else may be a 5xx.
    model_failed = "words" in path and "words:1 failed on this item" in r.text
    assert r.status_code < 500 or model_failed, (path, body, r.text)
    if r.status_code >= 400:
        assert r.json()["request_id"] == r.headers["x-request-id"]


limit_values = st.one_of(
    edge_numbers, st.integers(-(2**64) + 1, 2**64 - 1), st.floats(allow_infinity=False,
                                                                 allow_nan=False))  # fmt: skip


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.fixed_dictionaries({}, optional={f: limit_values for f in KEY_FIELDS[-3:]}))
def test_fuzzed_key_limits_never_get_a_5xx(hostile: Any, limits: dict[str, Any]) -> None:
    """A new key with any numbers JSON carries as its limits: 201 or a 400 naming one."""
    body = {"name": f"fuzz-{next(KEY_NUMBERS)}"} | limits  # never taken: the limits are stored
    r = httpx.post(f"{hostile.url}/admin/keys", json=body, headers=auth(hostile), timeout=30)
    assert r.status_code in (201, 400), (body, r.text)
    if r.status_code == 400:
        assert r.json()["field"] in limits, r.text


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.integers(1, 1100), st.sampled_from(["instances", "data", "content"]))
def test_fuzzed_nesting_depths_never_get_a_5xx(hostile: Any, depth: int, where: str) -> None:
    """Any depth orjson parses (it stops at 1024 itself), in each place that nests."""
    body = {
        "instances": b'{"instances": [%s]}',
        "data": b'{"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], '
                b'"data": %s}]}',
        "content": b'{"model": "chat", "messages": [{"role": "user", "content": %s}]}',
    }[where] % nested(depth)  # fmt: skip
    path = {"instances": "/v1/endpoints/digits/predict", "data": "/v2/models/digits/infer",
            "content": "/v1/chat/completions"}[where]  # fmt: skip
    r = post(hostile, path, body)
    assert 400 <= r.status_code < 500 or r.status_code == 200, (where, depth, r.text)
