"""Numbers from upstreams are checked before they reach the ledger (issue 14, finding 4).

An upstream's ``usage`` decides what a request cost, what a key's budget is charged and what
goes into the ledger; a negative count, 2**63 (which ended the ledger's writer), a string or a
fraction is the upstream's fault: a 502 naming the field, recorded like any other answer.
frugal serves on a socket, the LLM stand-in (tests/llm_double.py) on another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.config import parse_config
from frugal.runtimes.openai import MAX_USAGE_TOKENS
from tests.llm_double import LLMDouble
from tests.serving.test_openai_api import ledger_has, llm_config, llm_model

BAD_USAGES = {
    "negative": ({"prompt_tokens": -5, "completion_tokens": 3}, "usage.prompt_tokens"),
    "2**63": ({"prompt_tokens": 2**63, "completion_tokens": 3}, "usage.prompt_tokens"),
    "over the bound": ({"prompt_tokens": 1, "completion_tokens": MAX_USAGE_TOKENS + 1},
                       "usage.completion_tokens"),
    "a string": ({"prompt_tokens": "12", "completion_tokens": 3}, "usage.prompt_tokens"),
    "a float": ({"prompt_tokens": 4, "completion_tokens": 1.5}, "usage.completion_tokens"),
    "a bool": ({"prompt_tokens": True, "completion_tokens": 3}, "usage.prompt_tokens"),
    "not an object": ("lots", "usage"),
}  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[LLMDouble]:
    with LLMDouble() as double:
        yield double


def chat(url: str, model: str = "chat", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize("case", list(BAD_USAGES))
def test_a_bad_usage_is_a_502_naming_the_field_and_is_recorded(
    serve: Any, upstream: LLMDouble, tmp_path: Path, case: str
) -> None:
    """The answer is 502 with the field; the ledger row says 502 with no tokens; the next good
    answer is recorded as usual (the writer is alive)."""
    usage, field = BAD_USAGES[case]
    upstream.knobs.usage = usage
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    answer = chat(server.url)
    assert answer.status_code == 502, answer.text
    body = answer.json()
    assert body["field"] == field
    assert field in body["error"] and "gpt:1" in body["error"]
    assert body["request_id"] == answer.headers["x-request-id"]
    [row] = ledger_has(tmp_path, 1)
    assert (row["status"], row["tokens"], row["model_usd"]) == (502, 0, 0.0)
    assert row["request_id"] == answer.headers["x-request-id"]
    upstream.knobs.usage = None
    assert chat(server.url).status_code == 200
    good = ledger_has(tmp_path, 1, "status = 200")
    assert good[0]["tokens"] > 0


def test_a_bad_usage_from_embeddings_is_a_502_too(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    upstream.knobs.usage = {"prompt_tokens": -1}
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    answer = httpx.post(f"{server.url}/v1/embeddings", json={"model": "chat", "input": "hi"})
    assert answer.status_code == 502
    assert answer.json()["field"] == "usage.prompt_tokens"
    [row] = ledger_has(tmp_path, 1)
    assert row["status"] == 502


def test_a_bad_usage_chunk_ends_the_stream_and_the_row_says_502(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """Streamed, the headers are gone (200) when the usage chunk comes: the chunk is not passed
    on, the stream ends without [DONE], and the row records 502 priced by the estimate."""
    upstream.knobs.usage = {"prompt_tokens": 2**63, "completion_tokens": 2}
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    answer = chat(server.url, stream=True)
    assert answer.status_code == 200
    assert "echo" in answer.text  # the content chunks before it were relayed
    assert str(2**63) not in answer.text and "[DONE]" not in answer.text
    [row] = ledger_has(tmp_path, 1)
    assert row["status"] == 502
    assert 0 < row["tokens"] < 100  # the documented estimate, never the upstream's number


def test_a_bad_usage_falls_back_to_the_next_upstream(serve: Any, tmp_path: Path) -> None:
    """Like any upstream failure, a bad usage moves an endpoint on to its fallback model."""
    with LLMDouble() as broken, LLMDouble() as good:
        broken.knobs.usage = {"prompt_tokens": -3, "completion_tokens": 1}
        models = [llm_model("gpt", broken.url), llm_model("backup", good.url)]
        endpoint = {"name": "chat", "route": {"fallback": ["gpt", "backup"]}}
        config = llm_config(tmp_path, models, endpoints=[endpoint])
        server = serve(parse_config(config))
        answer = chat(server.url)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-frugal-model"] == "backup:1"
        [row] = ledger_has(tmp_path, 1)
        assert row["route"] == "gpt:1!>backup:1" and row["tokens"] > 0


def test_null_and_missing_counts_are_zero_and_a_missing_usage_is_unknown(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """``completion_tokens: null`` counts 0, as it always did; these are not errors."""
    upstream.knobs.usage = {"prompt_tokens": 7, "completion_tokens": None}
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    assert chat(server.url).status_code == 200
    [row] = ledger_has(tmp_path, 1)
    assert (row["status"], row["tokens"]) == (200, 7)
