"""LLM cascades over two real upstream doubles, through frugal's server and the OpenAI SDK.

``cheap`` answers first; its gate keeps the answer or sends the request to ``big``. The double
returns low logprobs for a message containing "hard" (tests/llm_double.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.routing import mean_logprob
from frugal.routing.calibrate import resolve_cascade
from tests.conftest import assert_charged, write_config
from tests.llm_double import EASY_LOGPROB, HARD_LOGPROB, LLMDouble, reply_words, usage_of
from tests.serving.test_openai_api import ledger_has, llm_config, sdk

CHEAP = (0.1, 0.4)  # $ per 1M prompt, completion tokens
BIG = (5.0, 15.0)
EASY = "what is two plus two"
HARD = "prove this hard conjecture"


def tier_model(name: str, url: str, prices: tuple[float, float]) -> dict[str, Any]:
    return {"name": name, "runtime": "openai", "upstream": {
        "base_url": url, "model": f"{name}-upstream", "input_usd_per_1m": prices[0],
        "output_usd_per_1m": prices[1], "timeout_s": 5.0, "max_retries": 0}}  # fmt: skip


def cascade_endpoint(accept: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    gate = accept if accept is not None else {"mean_logprob": ">= -0.4"}
    tiers = [{"model": "cheap", "accept": gate}, {"model": "big"}]
    return {"name": "chat", "route": {"cascade": tiers}, **extra}


@pytest.fixture
def doubles() -> Iterator[tuple[LLMDouble, LLMDouble]]:
    with LLMDouble() as cheap, LLMDouble() as big:
        yield cheap, big


def start(serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble], **endpoint: Any) -> Any:
    cheap, big = doubles
    models = [tier_model("cheap", cheap.url, CHEAP), tier_model("big", big.url, BIG)]
    endpoints = [cascade_endpoint(**endpoint)]
    return serve(parse_config(llm_config(tmp_path, models, endpoints=endpoints)))


def price(content: str, prices: tuple[float, float]) -> tuple[int, float]:
    """Tokens and dollars the double charges for one user message, from its own usage rule."""
    body = {"messages": [{"role": "user", "content": content}]}
    usage = usage_of(body, reply_words(body))
    cost = (usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]) / 1e6
    return usage["total_tokens"], cost


def ask(client: openai.OpenAI, content: str, **options: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": content}], **options
    )


def test_an_easy_prompt_stops_at_the_cheap_tier_and_a_hard_one_escalates(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """Route, cost and tokens of each row are those of the tiers it called; logprobs that
    frugal asked for are not in the answer."""
    cheap, big = doubles
    server = start(serve, tmp_path, doubles)
    client = sdk(server)
    easy = ask(client, EASY)
    answer = easy.parse()
    assert answer.choices[0].message.content == f"echo {EASY}"
    assert answer.choices[0].logprobs is None  # stripped: the client did not ask
    assert easy.headers["x-frugal-model"] == "cheap:1"
    assert cheap.calls[0]["logprobs"] is True and not big.calls
    hard = ask(client, HARD)
    assert hard.parse().choices[0].message.content == f"echo {HARD}"
    assert hard.headers["x-frugal-model"] == "big:1"
    assert len(cheap.calls) == 2 and "logprobs" not in big.calls[0]

    easy_tokens, easy_cost = price(EASY, CHEAP)
    cheap_tokens, cheap_cost = price(HARD, CHEAP)
    big_tokens, big_cost = price(HARD, BIG)
    assert_charged(easy.headers["x-frugal-cost-usd"], easy_cost)
    assert_charged(hard.headers["x-frugal-cost-usd"], cheap_cost + big_cost)
    first, second = ledger_has(tmp_path, 2)
    assert (first["model"], first["route"], first["tokens"]) == ("cheap", "cheap:1*1", easy_tokens)
    assert first["model_usd"] == pytest.approx(easy_cost)
    assert (second["model"], second["route"]) == ("big", "cheap:1*0>big:1*1")
    assert second["tokens"] == cheap_tokens + big_tokens
    assert second["model_usd"] == pytest.approx(cheap_cost + big_cost)
    metrics = httpx.get(f"{server.url}/metrics").text
    for model, result in (("cheap:1", "accepted"), ("cheap:1", "escalated"), ("big:1", "accepted")):
        line = f'frugal_cascade_items_total{{endpoint="chat",model="{model}",result="{result}"}}'
        assert f"{line} 1.0" in metrics


def test_logprobs_the_client_asked_for_are_kept(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """A client that asked for logprobs gets the tier's, one per token."""
    server = start(serve, tmp_path, doubles)
    answer = ask(sdk(server), EASY, logprobs=True).parse()
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [t.logprob for t in logprobs.content] == [EASY_LOGPROB] * (len(EASY.split()) + 1)


def test_an_upstream_without_logprobs_escalates_with_one_warning(
    serve: Any,
    tmp_path: Path,
    doubles: tuple[LLMDouble, LLMDouble],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No logprobs is no score: every request escalates, and the model is named once in the log."""
    cheap, big = doubles
    cheap.knobs.no_logprobs = True
    server = start(serve, tmp_path, doubles)
    client = sdk(server)
    with caplog.at_level(logging.WARNING, logger="frugal.llm"):
        for _ in range(3):
            assert ask(client, EASY).headers["x-frugal-model"] == "big:1"
    warnings = [r for r in caplog.records if "returned no logprobs" in r.getMessage()]
    assert len(warnings) == 1 and "cheap:1" in warnings[0].getMessage()
    assert (len(cheap.calls), len(big.calls)) == (3, 3)


SCORED: list[tuple[dict[str, Any], dict[str, Any]]] = []


def score_short_answers(
    requests: Sequence[dict[str, Any]], completions: Sequence[dict[str, Any]]
) -> list[float]:
    """A user scorer: 1.0 for an answer of at most five words, else 0.0."""
    SCORED.extend(zip(requests, completions, strict=True))
    words = [len(c["choices"][0]["message"]["content"].split()) for c in completions]
    return [1.0 if n <= 5 else 0.0 for n in words]


def test_a_scorer_gate_sees_the_request_and_the_completion(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """The scorer gets the payload and the completion body; its score decides the tier."""
    _, big = doubles
    scorer = "tests.serving.test_llm_cascade:score_short_answers"
    server = start(serve, tmp_path, doubles, accept={"scorer": scorer, "threshold": ">= 0.5"})
    SCORED.clear()
    client = sdk(server)
    assert ask(client, "one two three").headers["x-frugal-model"] == "cheap:1"
    assert ask(client, "one two three four five six").headers["x-frugal-model"] == "big:1"
    request, completion = SCORED[0]
    assert request["messages"][-1]["content"] == "one two three"
    assert "logprobs" not in request  # only mean_logprob tiers ask for them
    assert completion["choices"][0]["message"]["content"] == "echo one two three"
    assert len(SCORED) == 2 and len(big.calls) == 1
    _, second = ledger_has(tmp_path, 2)
    assert second["route"] == "cheap:1*0>big:1*1"


def test_a_failing_first_tier_escalates_and_a_failing_last_tier_is_the_answer(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """500 from cheap: big answers. Then big fails too: 502, and the row keeps cheap's cost."""
    cheap, big = doubles
    cheap.knobs.fail_500 = 1
    server = start(serve, tmp_path, doubles)
    body = {"model": "chat", "messages": [{"role": "user", "content": EASY}]}
    url = f"{server.url}/v1/chat/completions"
    answered = httpx.post(url, json=body, timeout=30)
    assert answered.status_code == 200 and answered.headers["x-frugal-model"] == "big:1"
    big.knobs.fail_500 = 1
    body["messages"] = [{"role": "user", "content": HARD}]
    failed = httpx.post(url, json=body, timeout=30)
    assert failed.status_code == 502 and "big:1" in failed.json()["error"]
    _, cheap_cost = price(HARD, CHEAP)
    assert_charged(failed.headers["x-frugal-cost-usd"], cheap_cost)
    first, second = ledger_has(tmp_path, 2)
    assert (first["status"], first["route"]) == (200, "cheap:1*0>big:1*1")
    assert first["model_usd"] == pytest.approx(price(EASY, BIG)[1])
    assert (second["status"], second["route"]) == (502, "cheap:1*0>big:1*1")
    assert second["model_usd"] == pytest.approx(cheap_cost)
    assert second["tokens"] == price(HARD, CHEAP)[0]


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streaming_an_accepted_answer_replays_it_as_chunks(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """The cheap tier is called without streaming; the SDK's iterator still gets the text."""
    cheap, big = doubles
    server = start(serve, tmp_path, doubles)
    chunks = list(sdk(server).chat.completions.create(
        model="chat", stream=True, messages=[{"role": "user", "content": EASY}]))  # fmt: skip
    assert streamed_text(chunks) == f"echo {EASY}"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.choices[0].logprobs is None for c in chunks if c.choices)
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert "stream" not in cheap.calls[0] and not big.calls
    tokens, cost = price(EASY, CHEAP)
    assert usage.total_tokens == tokens
    [row] = ledger_has(tmp_path, 1)
    assert (row["route"], row["tokens"]) == ("cheap:1*1", tokens)
    assert row["model_usd"] == pytest.approx(cost)


def test_streaming_an_escalated_request_streams_the_last_tier_and_charges_both(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """The last tier streams; the row written at its end adds the first tier's cost."""
    cheap, big = doubles
    server = start(serve, tmp_path, doubles)
    chunks = list(sdk(server).chat.completions.create(
        model="chat", stream=True, messages=[{"role": "user", "content": HARD}]))  # fmt: skip
    assert streamed_text(chunks) == f"echo {HARD}"
    assert "stream" not in cheap.calls[0] and big.calls[0]["stream"] is True
    assert big.streams_finished == 1
    cheap_tokens, cheap_cost = price(HARD, CHEAP)
    big_tokens, big_cost = price(HARD, BIG)
    [row] = ledger_has(tmp_path, 1)
    assert (row["model"], row["route"], row["status"]) == ("big", "cheap:1*0>big:1*1", 200)
    assert row["tokens"] == cheap_tokens + big_tokens
    assert row["model_usd"] == pytest.approx(cheap_cost + big_cost)
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": HARD}]}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert raw.headers["x-frugal-model"] == "big:1"
    comment = next(line for line in raw.text.splitlines() if line.startswith(": x-frugal-cost"))
    assert_charged(comment.split()[-1], cheap_cost + big_cost)


def test_embeddings_on_a_cascade_endpoint_are_refused(
    serve: Any, tmp_path: Path, doubles: tuple[LLMDouble, LLMDouble]
) -> None:
    """A cascade answers chat only: 400 on `model`, its models still callable by name."""
    cheap, big = doubles
    server = start(serve, tmp_path, doubles)
    refused = httpx.post(f"{server.url}/v1/embeddings", json={"model": "chat", "input": "x"})
    assert refused.status_code == 400 and refused.json()["field"] == "model"
    assert "chat completions only" in refused.json()["error"]
    assert "cheap:1, big:1" in refused.json()["hint"]
    direct = httpx.post(f"{server.url}/v1/embeddings", json={"model": "cheap", "input": "x"})
    assert direct.status_code == 200
    assert not big.calls and len(cheap.calls) == 1


def test_mean_logprob_needs_every_token_logprob() -> None:
    """The mean of choices[0]'s token logprobs; any missing one means no signal."""

    def body(*logprobs: Any) -> dict[str, Any]:
        content = [{"token": "t", "logprob": lp} for lp in logprobs]
        return {"choices": [{"message": {}, "logprobs": {"content": content}}]}

    assert mean_logprob(body(-0.5, -1.5)) == pytest.approx(-1.0)
    assert mean_logprob(body(HARD_LOGPROB)) == HARD_LOGPROB
    bads: list[dict[str, Any]] = [body(), body(-0.1, None), body(float("nan")), body(True),
                                  {"choices": []}, {}]  # fmt: skip
    for bad in bads:
        assert mean_logprob(bad) is None


def llm_models() -> list[dict[str, Any]]:
    return [tier_model("cheap", "http://127.0.0.1:9/v1", CHEAP),
            tier_model("big", "http://127.0.0.1:9/v1", BIG)]  # fmt: skip


def local_models() -> list[dict[str, Any]]:
    return [{"name": n, "runtime": "python", "factory": "pkg.mod:build"} for n in ("a", "b")]


@pytest.mark.parametrize(
    ("models", "tiers", "field", "says"),
    [
        (llm_models(), ["cheap", "big"], "endpoints[0].route.cascade[0].accept.confidence",
         "`confidence` is not a gate of runtime openai tiers: use `mean_logprob` or `scorer`"),
        (llm_models(), ["cheap", "big"], "endpoints[0].route.cascade[0].accept.margin",
         "`margin` is not a gate of runtime openai tiers"),
        (local_models(), ["a", "b"], "endpoints[0].route.cascade[0].accept.mean_logprob",
         "`mean_logprob` is not a gate of local-model tiers: use `confidence` or `margin`"),
        (llm_models(), ["cheap", "big"], "endpoints[0].route.cascade[0].accept",
         "is not a comparison"),
    ],
)  # fmt: skip
def test_gate_signals_that_do_not_fit_the_tier_are_config_errors(
    models: list[dict[str, Any]], tiers: list[str], field: str, says: str
) -> None:
    """confidence/margin are local signals, mean_logprob an LLM one; each error names the gate."""
    gate = {"confidence": ">= 0.9", "margin": "> 0.1", "mean_logprob": ">= -0.4"}
    name = field.rpartition(".")[2]
    accept = {name: gate[name]} if name in gate else {"mean_logprob": "high"}
    route = {"cascade": [{"model": tiers[0], "accept": accept}, {"model": tiers[1]}]}
    data = {"instance": {"price_usd_per_hour": 0.36}, "models": models,
            "endpoints": [{"name": "chat", "route": route}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(data, file="frugal.yaml")
    assert info.value.field == field and says in info.value.message


def test_an_llm_cascade_with_an_unimportable_scorer_stops_the_start(tmp_path: Path) -> None:
    """A scorer that cannot be imported is a ConfigError before serving, naming the gate."""
    from frugal.serving import build_engine

    accept = {"scorer": "no_such_mod:score", "threshold": ">= 0.5"}
    data = llm_config(tmp_path, llm_models(), endpoints=[cascade_endpoint(accept)])
    with pytest.raises(ConfigError, match="cannot import scorer no_such_mod:score") as info:
        build_engine(parse_config(data))
    assert info.value.field == "endpoints[0].route.cascade[0].accept"


def test_calibrate_resolves_an_llm_cascade(tmp_path: Path) -> None:
    """calibrate measures an LLM cascade too (tests/optimize/test_llm_calibrate.py runs it):
    its tiers resolve as upstream models, with their gates."""
    path = write_config(tmp_path, llm_config(tmp_path, llm_models(),
                                             endpoints=[cascade_endpoint()]))  # fmt: skip
    cascade = resolve_cascade(path, "chat")
    assert cascade.llm and all(m.upstream is not None for m in cascade.models)
    assert cascade.gates[0] is not None and cascade.gates[-1] is None
