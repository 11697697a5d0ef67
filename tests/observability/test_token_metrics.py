"""LLM tokens on /metrics, through a real server and the LLM upstream double."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from frugal.access import KeyStore
from frugal.config import parse_config
from tests.llm_double import LLMDouble
from tests.serving.test_openai_api import ledger_has, llm_config, llm_model


@pytest.fixture
def upstream() -> Any:
    with LLMDouble() as double:
        yield double


def token_samples(text: str) -> dict[tuple[str, str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "frugal_llm_tokens":
            for s in family.samples:
                if s.name == "frugal_llm_tokens_total":
                    labels = (s.labels["endpoint"], s.labels["key"], s.labels["direction"])
                    found[labels] = s.value
    return found


def test_tokens_are_counted_by_endpoint_and_key_input_and_output_apart(
    serve: Any, upstream: LLMDouble, tmp_path: Path
) -> None:
    """Each key's prompt and completion tokens add up to what the upstream reported."""
    config = llm_config(
        tmp_path, [llm_model("gpt", upstream.url)],
        auth={"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05},
    )  # fmt: skip
    store = KeyStore(tmp_path / "keys.db")
    alice = store.create("alice", "user", endpoints=["chat"])[1]
    bob = store.create("bob", "user", endpoints=["chat"])[1]
    viewer = store.create("ops", "admin")[1]
    server = serve(parse_config(config))
    usage: dict[str, list[int]] = {"alice": [0, 0], "bob": [0, 0]}
    for name, secret, content in (("alice", alice, "hello there"), ("bob", bob, "one two three "
                                  "four five six"), ("alice", alice, "again")):  # fmt: skip
        answer = httpx.post(
            f"{server.url}/v1/chat/completions", timeout=30,
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "chat", "messages": [{"role": "user", "content": content}]},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        usage[name][0] += answer.json()["usage"]["prompt_tokens"]
        usage[name][1] += answer.json()["usage"]["completion_tokens"]
    ledger_has(tmp_path, 3)
    scraped = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {viewer}"})
    assert scraped.status_code == 200
    samples = token_samples(scraped.text)
    assert samples == {
        ("chat", "alice", "input"): usage["alice"][0],
        ("chat", "alice", "output"): usage["alice"][1],
        ("chat", "bob", "input"): usage["bob"][0],
        ("chat", "bob", "output"): usage["bob"][1],
    }
    assert usage["alice"][0] > 0 and usage["bob"][1] > 0
    assert alice not in scraped.text and bob not in scraped.text  # names, never secrets


def test_without_auth_tokens_carry_no_key(serve: Any, upstream: LLMDouble, tmp_path: Path) -> None:
    """With auth off, the key label is "-"."""
    server = serve(parse_config(llm_config(tmp_path, [llm_model("gpt", upstream.url)])))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200
    samples = token_samples(httpx.get(f"{server.url}/metrics").text)
    assert samples[("chat", "-", "input")] == answer.json()["usage"]["prompt_tokens"]
    assert samples[("chat", "-", "output")] == answer.json()["usage"]["completion_tokens"]
