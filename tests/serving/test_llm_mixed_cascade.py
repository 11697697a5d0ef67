"""A local model as the first tier of an LLM cascade, through frugal's server and the OpenAI SDK.

The first tier is a real scikit-learn text classifier (TF-IDF + logistic regression) trained
here on templated FAQ questions; its classes are the canned answers. A question it knows is
answered by it (confidence over the gate); anything else escalates to the upstream double
(tests/llm_double.py). One ledger row per request names each tier's dollars.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import openai
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from frugal.accounting.tier_costs import parse_tier_costs
from frugal.config import parse_config
from frugal.errors import ConfigError, InvalidInput
from frugal.routing import answer_text, chat_text
from tests.conftest import assert_charged
from tests.llm_double import LLMDouble, reply_words, usage_of
from tests.serving.test_openai_api import ledger_has, llm_config, sdk

BIG = (5.0, 15.0)  # $ per 1M prompt, completion tokens
HOURS = "We are open 9:00 to 17:00, Monday to Friday."
REFUND = "Refunds are paid back to your card within 5 working days."
PASSWORD = "Use 'Forgot password' on the sign-in page to get a reset link."
FAQ = {
    HOURS: ["when are you open", "what are your opening hours", "are you open on monday",
            "what time do you close", "when does the shop open"],
    REFUND: ["how do I get a refund", "when will my refund arrive", "can I get my money back",
             "refund for my order", "how long does a refund take"],
    PASSWORD: ["I forgot my password", "how do I reset my password", "cannot sign in password",
               "change my password", "password reset link"],
}  # fmt: skip
KNOWN = "what are your opening hours"
UNKNOWN = "tell me a joke"


def train_faq(path: Path) -> str:
    """The classifier, trained on the templates with a little noise; returns its sha256."""
    rng = random.Random(7)
    fillers = ["", "please", "hi,", "hello", "quick question:", "thanks"]
    texts, labels = [], []
    for answer, questions in FAQ.items():
        for question in questions:
            for _ in range(8):
                texts.append(f"{rng.choice(fillers)} {question} {rng.choice(fillers)}".strip())
                labels.append(answer)
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(C=20.0, max_iter=500))
    model.fit(texts, labels)
    joblib.dump(model, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def faq_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("faq") / "faq.joblib"
    return path, train_faq(path)


def faq_model(faq: tuple[Path, str], **extra: Any) -> dict[str, Any]:
    path, sha = faq
    return {"name": "faq", "runtime": "sklearn", "path": str(path), "sha256": sha,
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "batching": {"max_batch_size": 8, "max_wait_ms": 1, "timeout_ms": 5000},
            **extra}  # fmt: skip


def big_model(url: str) -> dict[str, Any]:
    return {"name": "big", "runtime": "openai", "upstream": {
        "base_url": url, "model": "big-upstream", "input_usd_per_1m": BIG[0],
        "output_usd_per_1m": BIG[1], "timeout_s": 5.0, "max_retries": 0}}  # fmt: skip


def mixed_endpoint(gate: dict[str, str] | None = None) -> dict[str, Any]:
    accept = gate if gate is not None else {"confidence": ">= 0.9"}
    return {"name": "chat", "route": {"cascade": [
        {"model": "faq", "accept": accept}, {"model": "big"}]}}  # fmt: skip


@pytest.fixture
def big() -> Iterator[LLMDouble]:
    with LLMDouble() as double:
        yield double


def start(serve: Any, tmp_path: Path, faq: tuple[Path, str], big: LLMDouble) -> Any:
    data = llm_config(tmp_path, [faq_model(faq), big_model(big.url)], endpoints=[mixed_endpoint()])
    return serve(parse_config(data))


def ask(client: openai.OpenAI, content: str, **options: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": content}], **options
    )


def upstream_cost(content: str) -> tuple[int, float]:
    """Tokens and dollars the double charges for one user message, from its own usage rule."""
    body = {"messages": [{"role": "user", "content": content}]}
    usage = usage_of(body, reply_words(body))
    cost = (usage["prompt_tokens"] * BIG[0] + usage["completion_tokens"] * BIG[1]) / 1e6
    return usage["total_tokens"], cost


def test_a_known_question_is_answered_by_the_local_tier_and_the_rest_by_the_llm(
    serve: Any, tmp_path: Path, faq_file: tuple[Path, str], big: LLMDouble
) -> None:
    """The classifier's label is the answer, for the model's batch share and no tokens; an
    unknown chat escalates and its one row names both tiers' dollars, which add up."""
    server = start(serve, tmp_path, faq_file, big)
    client = sdk(server)
    known = ask(client, KNOWN)
    assert known.parse().choices[0].message.content == HOURS
    assert known.headers["x-frugal-model"] == "faq:1" and not big.calls
    unknown = ask(client, UNKNOWN)
    assert unknown.parse().choices[0].message.content == f"echo {UNKNOWN}"
    assert unknown.headers["x-frugal-model"] == "big:1" and len(big.calls) == 1
    assert "logprobs" not in big.calls[0]  # the LLM tier is the last: no gate to feed

    first, second = ledger_has(tmp_path, 2)
    assert (first["model"], first["route"], first["tokens"]) == ("faq", "faq:1*1", 0)
    assert first["model_usd"] > 0 and first["tier_costs"] == ""
    assert first["items"] == 1 and first["batch_size"] >= 1
    assert_charged(known.headers["x-frugal-cost-usd"], first["model_usd"])

    tokens, llm_usd = upstream_cost(UNKNOWN)
    assert (second["model"], second["route"], second["tokens"]) == ("big", "faq:1*0>big:1*1",
                                                                     tokens)  # fmt: skip
    tiers = dict(parse_tier_costs(second["tier_costs"]))
    assert list(tiers) == ["faq:1", "big:1"]
    assert tiers["big:1"] == pytest.approx(llm_usd) and tiers["faq:1"] > 0
    assert second["model_usd"] == pytest.approx(sum(tiers.values()))
    assert_charged(unknown.headers["x-frugal-cost-usd"], second["model_usd"])

    metrics = httpx.get(f"{server.url}/metrics").text
    for model, result in (("faq:1", "accepted"), ("faq:1", "escalated"), ("big:1", "accepted")):
        line = f'frugal_cascade_items_total{{endpoint="chat",model="{model}",result="{result}"}}'
        assert f"{line} 1.0" in metrics


def test_streamed_chats_get_the_local_answer_replayed_or_the_llms_stream(
    serve: Any, tmp_path: Path, faq_file: tuple[Path, str], big: LLMDouble
) -> None:
    server = start(serve, tmp_path, faq_file, big)
    client = sdk(server)
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": KNOWN}], stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HOURS
    assert not big.calls
    chunks = list(client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": UNKNOWN}], stream=True))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == f"echo {UNKNOWN}" and big.calls[0]["stream"] is True
    first, second = ledger_has(tmp_path, 2)
    assert first["route"] == "faq:1*1" and first["model_usd"] > 0
    assert second["route"] == "faq:1*0>big:1*1"
    assert [m for m, _ in parse_tier_costs(second["tier_costs"])] == ["faq:1", "big:1"]


def test_a_chat_with_no_user_text_skips_the_local_tier(
    serve: Any, tmp_path: Path, faq_file: tuple[Path, str], big: LLMDouble
) -> None:
    """Nothing for the classifier to read (the last user message is an image): the LLM answers,
    and the route shows the local tier did not."""
    server = start(serve, tmp_path, faq_file, big)
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    reply = httpx.post(f"{server.url}/v1/chat/completions", json={
        "model": "chat", "messages": [{"role": "user", "content": content}]})  # fmt: skip
    assert reply.status_code == 200 and reply.headers["x-frugal-model"] == "big:1"
    [row] = ledger_has(tmp_path, 1)
    assert row["route"] == "faq:1*0>big:1*1" and row["items"] == 0


def test_the_gate_decides_with_the_local_models_confidence(
    serve: Any, tmp_path: Path, faq_file: tuple[Path, str], big: LLMDouble
) -> None:
    """At an unreachable threshold every chat escalates, the known question too."""
    endpoint = mixed_endpoint({"confidence": "> 0.9999999"})
    data = llm_config(tmp_path, [faq_model(faq_file), big_model(big.url)], endpoints=[endpoint])
    server = serve(parse_config(data))
    reply = ask(sdk(server), KNOWN)
    assert reply.headers["x-frugal-model"] == "big:1" and len(big.calls) == 1


@pytest.mark.parametrize(
    ("tiers", "inputs", "field", "says"),
    [
        (["big", "faq", "big2"], None, "endpoints[0].route.cascade[1].model",
         "the local tiers come first"),
        (["faq", "big"], [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
         "endpoints[0].route.cascade[0].model", "takes one BYTES (text) input"),
    ],
)  # fmt: skip
def test_mixed_cascades_that_cannot_work_are_config_errors(
    faq_file: tuple[Path, str], tiers: list[str], inputs: Any, field: str, says: str
) -> None:
    faq = faq_model(faq_file) | ({"inputs": inputs} if inputs is not None else {})
    models = [faq, big_model("http://127.0.0.1:9/v1"),
              big_model("http://127.0.0.1:9/v1") | {"name": "big2"}]  # fmt: skip
    gates = {"faq": {"confidence": ">= 0.5"}, "big": {"mean_logprob": ">= -1"}}
    cascade = [{"model": t, "accept": gates[t]} for t in tiers[:-1]] + [{"model": tiers[-1]}]
    data = {"instance": {"price_usd_per_hour": 0.36}, "models": models,
            "endpoints": [{"name": "chat", "route": {"cascade": cascade}}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(data, file="frugal.yaml")
    assert info.value.field == field and says in info.value.message


def test_local_and_llm_models_still_do_not_mix_outside_a_cascade(
    faq_file: tuple[Path, str],
) -> None:
    models = [faq_model(faq_file), big_model("http://127.0.0.1:9/v1")]
    route = {"fallback": ["faq", "big"]}
    data = {"instance": {"price_usd_per_hour": 0.36}, "models": models,
            "endpoints": [{"name": "chat", "route": route}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(data, file="frugal.yaml")
    assert info.value.field == "endpoints[0].route.fallback[1]"
    assert "a `cascade` may put local models first" in info.value.message


def test_the_text_a_local_tier_reads_and_the_answer_it_gives() -> None:
    """The last user message (text parts joined); a label as it is, other values as JSON."""
    chat = {"messages": [{"role": "user", "content": "first"},
                         {"role": "assistant", "content": "reply"},
                         {"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "text", "text": "b"}]}]}  # fmt: skip
    assert chat_text(chat) == "a\nb"
    with pytest.raises(InvalidInput) as info:
        chat_text({"messages": [{"role": "system", "content": "only rules"}]})
    assert info.value.field == "messages"
    assert answer_text("yes") == "yes" and answer_text(3) == "3"
    assert answer_text({"label": [1, 2]}) == '{"label":[1,2]}'
