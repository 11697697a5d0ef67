"""OpenAI-compatible routes over a real upstream double: the OpenAI SDK against frugal's server.

frugal serves on a socket, the upstream double (tests/llm_double.py) on another; the ledger is
read back from SQLite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from frugal.access import KeyStore
from frugal.config import parse_config
from frugal.optimize import free_port
from tests.conftest import TEST_INSTANCE, assert_charged
from tests.llm_double import LLMDouble
from tests.waiting import eventually

IN_PER_1M = 2.5
OUT_PER_1M = 10.0


def llm_model(name: str, url: str, **upstream: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "openai", "upstream": {
        "base_url": url, "model": f"{name}-upstream", "input_usd_per_1m": IN_PER_1M,
        "output_usd_per_1m": OUT_PER_1M, "timeout_s": 5.0, **upstream}}  # fmt: skip


def llm_config(tmp_path: Path, models: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "instance": TEST_INSTANCE,
        "models": models,
        "endpoints": extra.pop("endpoints", [{"name": "chat", "model": models[0]["name"]}]),
        "ledger": {
            "path": str(tmp_path / "ledger.db"),
            "flush_interval_ms": 20,
            "cost_interval_ms": 20,
        },
        **extra,
    }


@pytest.fixture
def upstream() -> Iterator[LLMDouble]:
    with LLMDouble() as double:
        yield double


def rows(tmp_path: Path, where: str = "1") -> list[dict[str, Any]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.row_factory = sqlite3.Row
        found = db.execute(f"SELECT * FROM requests WHERE {where} ORDER BY ts").fetchall()
        return [dict(r) for r in found]


def ledger_has(tmp_path: Path, count: int, where: str = "1") -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]]:
        found = rows(tmp_path, where)
        return found if len(found) >= count else []

    return eventually(enough, f"{count} ledger rows where {where}")


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(server: Any, key: str = "no-auth", retries: int = 0) -> openai.OpenAI:
    """The real OpenAI SDK pointed at frugal (closed after the test)."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=retries)
    _clients.append(client)
    return client


def expected_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * IN_PER_1M + completion_tokens * OUT_PER_1M) / 1e6


def test_the_openai_sdk_chats_through_frugal_and_the_ledger_prices_the_usage(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """The SDK's chat answer is the upstream's; the ledger row has its tokens and cost."""
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    raw = sdk(server).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello there frugal"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "echo hello there frugal"
    assert answer.usage is not None
    prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
    cost = expected_cost(prompt, completion)
    assert_charged(raw.headers["x-frugal-cost-usd"], cost)
    assert raw.headers["x-frugal-model"] == "gpt:1"
    assert upstream.calls[0]["model"] == "gpt-upstream"  # the upstream's own name
    [row] = ledger_has(tmp_path, 1)
    assert (row["endpoint"], row["model"], row["status"]) == ("chat", "gpt", 200)
    assert row["tokens"] == prompt + completion
    assert row["model_usd"] == pytest.approx(cost)
    assert row["request_id"] == raw.headers["x-request-id"]


def test_a_model_is_callable_by_name_and_unknown_names_get_404(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    answer = sdk(server).chat.completions.create(
        model="gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo hi"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(server).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert "served: chat, gpt:1" in missing.value.response.json()["error"]
    bad = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "chat", "messages": []})
    assert bad.status_code == 400 and bad.json()["field"] == "messages"
    assert bad.json()["request_id"] == bad.headers["x-request-id"]
    listed = httpx.get(f"{server.url}/v1/endpoints").json()
    assert listed == [{"name": "chat", "model": "gpt:1"}]
    v2 = httpx.post(f"{server.url}/v2/models/gpt/infer", json={"inputs": []})
    assert v2.status_code == 404 and "chat/completions" in v2.json()["hint"]


def test_keys_are_checked_against_the_model_named_in_the_body_and_charged(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """A key limited to other endpoints gets 403; an allowed key's row carries its name."""
    config = llm_config(
        tmp_path,
        [llm_model("gpt", upstream.url)],
        auth={"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05},
    )
    store = KeyStore(tmp_path / "keys.db")
    allowed = store.create("alice", "user", endpoints=["chat"])[1]
    other = store.create("bob", "user", endpoints=["elsewhere"])[1]
    server = serve(parse_config(config))
    with pytest.raises(openai.AuthenticationError):
        sdk(server, "frg_wrong").chat.completions.create(model="chat", messages=[])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(server, other).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
    sdk(server, allowed).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    [row] = ledger_has(tmp_path, 1)
    assert row["key_name"] == "alice" and row["tokens"] > 0
    assert len(upstream.calls) == 1  # refused requests never reached the upstream


def test_the_upstream_key_comes_from_the_environment(
    serve: Any, upstream: LLMDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream.knobs.require_key = "sk-upstream"
    monkeypatch.setenv("DOUBLE_KEY", "sk-upstream")
    model = llm_model("gpt", upstream.url, api_key_env="DOUBLE_KEY")
    server = serve(parse_config(llm_config(tmp_path, [model])))
    answer = sdk(server).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo hi"


def chat(server: Any, model: str = "chat", content: str = "hi") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def test_upstream_500s_are_retried_until_it_answers(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """500 twice then OK: the caller gets 200 after three upstream calls."""
    upstream.knobs.fail_500 = 2
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    answer = chat(server)
    assert answer.status_code == 200, answer.text
    assert len(upstream.calls) == 3
    [row] = ledger_has(tmp_path, 1)
    assert row["status"] == 200 and row["tokens"] > 0


def test_a_429_is_retried_after_the_upstreams_retry_after(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """The retry waits Retry-After (1 s) rather than frugal's shorter backoff (<= 0.25 s)."""
    upstream.knobs.fail_429 = 1
    upstream.knobs.retry_after = "1"
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    assert chat(server).status_code == 200
    assert len(upstream.calls) == 2
    assert upstream.call_times[1] - upstream.call_times[0] >= 0.95  # a lower bound: sleeps last


def test_an_upstream_that_never_answers_in_time_is_a_504_after_its_retries(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    upstream.knobs.sleep_s = 2.0
    model = llm_model("gpt", upstream.url, timeout_s=0.2, max_retries=1)
    server = serve(parse_config(llm_config(tmp_path, [model])))
    answer = chat(server)
    assert answer.status_code == 504
    assert "did not answer within 0.2 s (2 attempts)" in answer.json()["error"]
    assert answer.json()["hint"]
    assert_charged(answer.headers["x-frugal-cost-usd"], 0.0)  # no tokens: only the server's work
    assert len(upstream.calls) == 2
    [row] = ledger_has(tmp_path, 1)
    assert (row["status"], row["model_usd"], row["tokens"]) == (504, 0.0, 0)


def test_a_failing_upstream_falls_back_to_the_next_model_and_the_route_says_so(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    with LLMDouble() as backup:
        upstream.knobs.fail_500 = 100
        models = [llm_model("main", upstream.url, max_retries=1), llm_model("spare", backup.url)]
        endpoint = {"name": "chat", "route": {"fallback": ["main", "spare"]}}
        server = serve(parse_config(llm_config(tmp_path, models, endpoints=[endpoint])))
        answer = chat(server)
        assert answer.status_code == 200
        assert answer.headers["x-frugal-model"] == "spare:1"
        assert (len(upstream.calls), len(backup.calls)) == (2, 1)
        [row] = ledger_has(tmp_path, 1)
        assert (row["model"], row["route"]) == ("spare", "main:1!>spare:1")
        backup.knobs.fail_500 = 100
        failed = chat(server)
        assert failed.status_code == 502
        assert "spare:1" in failed.json()["error"]


def test_an_unreachable_upstream_is_a_502_naming_the_model(serve: Any, tmp_path: Path) -> None:
    model = llm_model("gpt", f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    server = serve(parse_config(llm_config(tmp_path, [model])))
    answer = chat(server)
    assert answer.status_code == 502
    assert answer.json()["error"].startswith("model gpt:1: cannot reach the upstream")


def test_embeddings_through_the_sdk_are_priced_from_prompt_tokens(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    server = serve(parse_config(llm_config(tmp_path, [llm_model("embed", upstream.url)])))
    raw = sdk(server).embeddings.with_raw_response.create(
        model="embed", input=["frugal serving", "cost per request"]
    )
    answer = raw.parse()
    assert [len(d.embedding) for d in answer.data] == [8, 8]
    assert answer.data[0].embedding != answer.data[1].embedding
    tokens = answer.usage.prompt_tokens
    assert_charged(raw.headers["x-frugal-cost-usd"], expected_cost(tokens, 0))
    [row] = ledger_has(tmp_path, 1)
    assert (row["tokens"], row["status"]) == (tokens, 200)
    missing = httpx.post(f"{server.url}/v1/embeddings", json={"model": "embed", "input": []})
    assert missing.status_code == 400 and missing.json()["field"] == "input"


def test_streaming_passes_chunks_through_and_records_the_final_usage(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """The SDK's stream iterator gets the words; frugal asked the upstream for usage."""
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    stream = sdk(server).chat.completions.create(
        model="chat", stream=True, messages=[{"role": "user", "content": "one two three four"}]
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo one two three four"
    assert upstream.calls[0]["stream_options"] == {"include_usage": True}
    usage = next(c.usage for c in chunks if c.usage is not None)
    [row] = ledger_has(tmp_path, 1)
    assert row["tokens"] == usage.prompt_tokens + usage.completion_tokens
    assert row["model_usd"] == pytest.approx(
        expected_cost(usage.prompt_tokens, usage.completion_tokens)
    )
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=body)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-frugal-model"] == "gpt:1"
    assert ": x-frugal-cost-usd " in raw.text


def test_a_client_leaving_mid_stream_is_still_charged_for_what_was_used(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """No usage chunk arrives: the row estimates tokens from the text that did pass."""
    upstream.knobs.chunk_delay_s = 0.05
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    words = " ".join(f"w{i}" for i in range(200))
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": words}]}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if "w3" in line:
                break  # leave after a few words
    [row] = ledger_has(tmp_path, 1)
    assert row["status"] == 200
    prompt = -(-len(words) // 4)
    assert prompt < row["tokens"] < prompt + 200  # the prompt plus some of the reply
    assert row["model_usd"] > expected_cost(prompt, 0)
    assert upstream.streams_finished == 0


def test_endpoint_token_limits_reach_the_upstream(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """max_tokens is clamped to the endpoint's, and old messages are dropped to fit."""
    endpoint = {"name": "chat", "model": "gpt", "llm": {"max_tokens": 3, "max_prompt_tokens": 20}}
    config = llm_config(tmp_path, [llm_model("gpt", upstream.url)], endpoints=[endpoint])
    server = serve(parse_config(config))
    messages: list[ChatCompletionMessageParam] = [
                {"role": "system", "content": "be brief"}, {"role": "user", "content": "x" * 200},
                {"role": "user", "content": "one two three four five"}]  # fmt: skip
    answer = sdk(server).chat.completions.create(model="chat", messages=messages, max_tokens=99)
    assert answer.choices[0].message.content == "echo one two"  # 3 tokens
    sent = upstream.calls[0]
    assert sent["max_tokens"] == 3
    assert [m["content"] for m in sent["messages"]] == ["be brief", "one two three four five"]


def test_a_key_whose_tokens_are_spent_gets_429_and_nothing_is_recorded(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    auth = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    config = llm_config(tmp_path, [llm_model("gpt", upstream.url)], auth=auth)
    secret = KeyStore(tmp_path / "keys.db").create("small", "user", tokens_day=5)[1]
    server = serve(parse_config(config))
    client = sdk(server, secret)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "a b c"}])
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "d"}])
    body = refused.value.response.json()
    assert body["budget"]["name"] == "tokens_day" and body["budget"]["spent"] > 5
    assert len(upstream.calls) == 1
    assert len(ledger_has(tmp_path, 1)) == 1
