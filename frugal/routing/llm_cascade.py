"""LLM cascades: a cheap upstream model answers first; its gate keeps the answer or escalates.

A tier's gate is ``mean_logprob`` (the mean of the answer's token logprobs, asked of the
upstream with ``logprobs: true``) or a user scorer ``fn(requests, completions) -> scores``
called with one request payload and the upstream's completion body. An answer without the
signal (an upstream that returns no logprobs, a scorer that raises or gives None) is not
accepted. An upstream error on a tier but the last escalates too, as in local cascades, so a
cascade is also a fallback; the last tier's answer or error is final. The request pays for every
tier it called, each tier's dollars named in the row (docs/llm.md#cascades).

The first tiers may be local models (a classifier that answers the simple chats): the serving
side runs the chat's text through that model's batcher and says what its answer would be
(``LocalCall``); the tier's gate (``confidence``, ``margin`` or a scorer, as in local cascades)
keeps it or escalates.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from frugal.config import EndpointConfig, FrugalConfig
from frugal.errors import FrugalError, InvalidInput
from frugal.routing.cascade import TierObserver
from frugal.routing.gates import Gate
from frugal.runtimes.openai import Completion, Usage
from frugal.types import Item, ItemOutcome

log = logging.getLogger("frugal.llm")
# Calls one tier: (model key, request body) -> the upstream's non-streamed answer.
ChatCall = Callable[[str, dict[str, Any]], Awaitable[Completion]]


@dataclass(frozen=True, slots=True)
class LocalRun:
    """A local tier's run on one chat: the item it read, its outcome (batch, cost, error) and
    the chat completion its answer would be (None when it failed)."""

    item: Item
    outcome: ItemOutcome
    completion: Completion | None


# Runs a local tier's model on a chat request: (model key, request body) -> its run.
LocalCall = Callable[[str, dict[str, Any]], Awaitable[LocalRun]]


@dataclass(frozen=True, slots=True)
class LLMTier:
    model: str  # name:version of a runtime openai model, or of a local model when ``local``
    gate: Gate | None  # None: the last tier, which keeps every answer
    local: bool = False  # a local model reading the chat's text (always before the LLM tiers)


@dataclass(slots=True)
class CascadeSpend:
    """What one request spent on its way down the tiers: the ledger's cost, tokens and route.

    The caller owns it, so what was spent is known even when the last tier fails.
    """

    path: list[str] = field(default_factory=list)  # "model*answered" per tier called
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0  # the upstream tiers' token bills; local tiers are in ``local``
    exact: bool = True
    upstream: list[tuple[str, float]] = field(default_factory=list)  # (model, usd) per call
    local: list[ItemOutcome] = field(default_factory=list)  # local tiers' outcomes, in order

    def add(self, usage: Usage, cost_usd: float, model: str = "") -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost_usd += cost_usd
        self.exact = self.exact and usage.exact
        if model:
            self.upstream.append((model, cost_usd))

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens, self.exact)

    @property
    def route(self) -> str:
        """``cheap:1*0>big:1*1``: the local cascade's format (model*answered, per tier)."""
        return ">".join(self.path)


@dataclass(frozen=True, slots=True)
class CascadeAnswer:
    """The tier that answered, and its answer; ``completion`` is None when the last tier was
    left to the caller (a streamed request that every earlier tier escalated)."""

    model: str
    completion: Completion | None


def mean_logprob(body: dict[str, Any]) -> float | None:
    """Mean of ``choices[0].logprobs.content[*].logprob``; None when any is missing."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    logprobs = choices[0].get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content:
        return None
    values: list[float] = []
    for token in content:
        value = token.get("logprob") if isinstance(token, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        values.append(float(value))
    return math.fsum(values) / len(values)


class LLMCascade:
    """One endpoint's tiers of upstream models, tried in order for each chat request."""

    def __init__(
        self, endpoint: str, tiers: Sequence[LLMTier], *, warned: set[str] | None = None
    ) -> None:
        if len(tiers) < 2 or tiers[-1].gate is not None:
            raise ValueError("a cascade has at least two tiers and the last has no gate")
        self.endpoint = endpoint
        self.tiers = list(tiers)
        self.models: tuple[str, ...] = tuple(t.model for t in tiers)
        self._warned = warned if warned is not None else set()  # models that gave no logprobs

    async def answer(
        self,
        payload: dict[str, Any],
        call: ChatCall,
        spend: CascadeSpend,
        *,
        local: LocalCall | None = None,
        observe: TierObserver | None = None,
        leave_last: bool = False,
    ) -> CascadeAnswer:
        """The first kept answer; with ``leave_last``, stop before calling the last tier.

        Raises the last tier's error; ``spend`` holds what the tiers before it cost.
        ``local`` runs the local tiers (required when there are any).
        """
        for tier in self.tiers:
            last = tier.gate is None
            if last and leave_last:
                return CascadeAnswer(tier.model, None)
            if tier.local:
                assert local is not None, "a cascade with local tiers needs `local`"
                local_answer = await self._local(tier, payload, local, spend, observe)
                if local_answer is not None:
                    return CascadeAnswer(tier.model, local_answer)
                continue
            body = _request_for(tier, payload)
            try:
                completion = await call(tier.model, body)
            except FrugalError as error:
                self.settle(spend, tier.model, answered=last, failed=last, observe=observe)
                if last:
                    raise
                log.warning("cascade %s: tier %s failed, escalating: %s",
                            self.endpoint, tier.model, error.message)  # fmt: skip
                continue
            spend.add(completion.usage, completion.cost_usd, tier.model)
            kept = last or await self._kept(tier, body, completion)
            self.settle(spend, tier.model, answered=kept, failed=False, observe=observe)
            if kept:
                return CascadeAnswer(tier.model, _as_asked(completion, payload, body))
        raise AssertionError("the last tier keeps every answer")  # pragma: no cover

    async def _local(
        self,
        tier: LLMTier,
        payload: dict[str, Any],
        local: LocalCall,
        spend: CascadeSpend,
        observe: TierObserver | None,
    ) -> Completion | None:
        """A local tier's answer when its gate keeps it; None escalates (a failure too)."""
        gate = tier.gate
        assert gate is not None  # the last tier is an upstream one (config/routes.py)
        try:
            run = await local(tier.model, payload)
        except FrugalError as error:  # e.g. no text to read: the LLM tiers answer it
            self.settle(spend, tier.model, answered=False, failed=True, observe=observe)
            log.info("cascade %s: tier %s cannot read this chat, escalating: %s",
                     self.endpoint, tier.model, error.message)  # fmt: skip
            return None
        spend.local.append(run.outcome)
        prediction = run.outcome.prediction
        if run.completion is None or prediction is None:
            self.settle(spend, tier.model, answered=False, failed=True, observe=observe)
            return None
        if gate.signal == "scorer":  # a user function: off the event loop
            try:
                kept = (await asyncio.to_thread(gate.accepts, [run.item], [prediction]))[0]
            except Exception:
                log.exception("cascade %s: scorer %s failed; escalating",
                              self.endpoint, gate.config.scorer)  # fmt: skip
                kept = False
        else:
            kept = gate.accepts([run.item], [prediction])[0]
        self.settle(spend, tier.model, answered=kept, failed=False, observe=observe)
        return run.completion if kept else None

    def settle(
        self,
        spend: CascadeSpend,
        model: str,
        *,
        answered: bool,
        failed: bool,
        observe: TierObserver | None,
    ) -> None:
        """One tier's verdict: its step of the route and its count in the escalation metric."""
        spend.path.append(f"{model}*{int(answered)}")
        if observe is not None:
            accepted = answered and not failed
            observe(self.endpoint, model, int(accepted), int(not answered), int(failed))

    async def _kept(self, tier: LLMTier, body: dict[str, Any], completion: Completion) -> bool:
        gate = tier.gate
        assert gate is not None
        if gate.signal == "mean_logprob":
            score = mean_logprob(completion.body)
            if score is None and tier.model not in self._warned:
                self._warned.add(tier.model)
                log.warning(
                    "model %s returned no logprobs: its answers never pass the mean_logprob "
                    "gate (every request escalates); use a `scorer` gate for this upstream",
                    tier.model,
                )
            return gate.passes(score)
        try:  # a user function: off the event loop, and a broken one escalates, not fails
            scores = await asyncio.to_thread(gate.call_scorer, [body], [completion.body])
        except Exception:
            log.exception("cascade %s: scorer %s failed; escalating",
                          self.endpoint, gate.config.scorer)  # fmt: skip
            return False
        return gate.passes(scores[0])


def chat_text(payload: dict[str, Any]) -> str:
    """What a local tier reads of a chat: its last user message's text (a content list's text
    parts joined by newlines). InvalidInput when there is none, so the LLM tiers answer it."""
    messages = payload.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            content = "\n".join(p for p in parts if isinstance(p, str))
        if isinstance(content, str) and content.strip():
            return content
        break
    raise InvalidInput("no user message with text for the local tier to read", field="messages")


def answer_text(value: Any) -> str:
    """A local model's prediction as the chat answer's content: a label as it is, anything
    else as JSON. Calibration grades this same text (optimize/llm_tier_runs.py)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _request_for(tier: LLMTier, payload: dict[str, Any]) -> dict[str, Any]:
    if tier.gate is not None and tier.gate.signal == "mean_logprob":
        return payload | {"logprobs": True}
    return payload


def _as_asked(completion: Completion, payload: dict[str, Any], sent: dict[str, Any]) -> Completion:
    """The answer without the logprobs frugal asked for on the client's behalf."""
    if sent.get("logprobs") is not True or payload.get("logprobs") is True:
        return completion
    choices = completion.body.get("choices")
    if not isinstance(choices, list):
        return completion
    stripped = [c | {"logprobs": None} if isinstance(c, dict) else c for c in choices]
    return dataclasses.replace(completion, body=completion.body | {"choices": stripped})


def build_llm_cascades(
    config: FrugalConfig, *, warned: set[str] | None = None
) -> dict[str, LLMCascade]:
    """The cascade of every endpoint of runtime openai models; loads scorers (ConfigError)."""
    warned = warned if warned is not None else set()
    cascades: dict[str, LLMCascade] = {}
    for index, endpoint in enumerate(config.endpoints):
        if _is_llm_cascade(config, endpoint):
            assert endpoint.route is not None and endpoint.route.cascade is not None
            tiers = []
            for j, tier in enumerate(endpoint.route.cascade):
                model = config.find_model(tier.model)
                assert model is not None  # checked by config validation
                where = f"endpoints[{index}].route.cascade[{j}].accept"
                gate = Gate(tier.accept, field=where) if tier.accept is not None else None
                tiers.append(LLMTier(model.key, gate, local=model.upstream is None))
            cascades[endpoint.name] = LLMCascade(endpoint.name, tiers, warned=warned)
    return cascades


def _is_llm_cascade(config: FrugalConfig, endpoint: EndpointConfig) -> bool:
    """A cascade whose last tier is an upstream LLM (earlier tiers may be local models)."""
    if endpoint.route is None or endpoint.route.cascade is None:
        return False
    last = config.find_model(endpoint.route.cascade[-1].model)
    return last is not None and last.upstream is not None


__all__ = [
    "CascadeAnswer",
    "CascadeSpend",
    "ChatCall",
    "LLMCascade",
    "LLMTier",
    "LocalCall",
    "LocalRun",
    "answer_text",
    "build_llm_cascades",
    "chat_text",
    "mean_logprob",
]
