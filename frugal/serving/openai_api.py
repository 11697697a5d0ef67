"""OpenAI-compatible routes, ``POST /v1/chat/completions`` and ``/v1/embeddings``, over upstreams.

The request's ``model`` names a frugal endpoint whose models are ``runtime: openai`` (with its
fallback list and token limits) or such a model directly, so the OpenAI SDK works unchanged with
``base_url=http://host/v1`` and a frugal key. Each answer is priced from the upstream's ``usage``
and written to the ledger with its tokens, like any other request (docs/llm.md). An endpoint with
a ``cascade`` tries its tiers through routing/llm_cascade.py and pays for each tier it called;
its first tiers may be local models, run here through their batchers on the chat's text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from frugal.config import FrugalConfig, LLMBudgetConfig
from frugal.errors import FrugalError, InvalidInput, NotFound
from frugal.routing import (
    CascadeSpend,
    LLMCascade,
    LocalRun,
    answer_text,
    apply_budget,
    build_llm_cascades,
    chat_text,
    first_answer,
    prompt_chars,
)
from frugal.runtimes import check_depth
from frugal.runtimes.openai import Completion, Stream, UpstreamClient, Usage, estimate_tokens
from frugal.serving.admission import Admission, Caller
from frugal.serving.engine import Engine
from frugal.serving.errors import (
    CLIENT_GONE_STATUS,
    cost_headers,
    is_server_fault,
    reply_for,
    status_of,
)
from frugal.serving.exchange import UNBOUNDED, ClientGone, Exchange
from frugal.serving.intake import Intake
from frugal.serving.openai_sse import completion_events, cost_comment
from frugal.serving.recorder import Finished
from frugal.serving.responses import as_response, json_response

log = logging.getLogger("frugal.llm")
Kind = Literal["chat", "embeddings"]
# How deep lists and objects may nest within one field of a request (``messages[i].content``,
# ``tools``, ``input``): far past what OpenAI's shapes need, and far below where the body could
# no longer be sent upstream (orjson writes 254 levels at most).
MAX_FIELD_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Target:
    """What a request's ``model`` resolves to: the models to try in order, and token limits."""

    label: str  # the ledger's endpoint column
    models: tuple[str, ...]  # name:version keys, first choice first
    budget: LLMBudgetConfig | None = None
    cascade: LLMCascade | None = None  # tiers with gates, instead of a fallback list


def build_clients(
    config: FrugalConfig, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, UpstreamClient]:
    """One client (connection pool, semaphore) per ``runtime: openai`` model version."""
    return {m.key: UpstreamClient(m, transport=transport) for m in config.upstream_models}


class LLMRoutes:
    """The two routes' handlers; the app gives them admission and the engine (for the ledger)."""

    def __init__(
        self, config: FrugalConfig, clients: dict[str, UpstreamClient], *,
        intake: Intake = UNBOUNDED,
    ) -> None:  # fmt: skip
        self.config = config
        self.clients = clients
        self.intake = intake  # the server's body deadline and slow-client count
        self.targets: dict[str, Target] = {}
        cascades = build_llm_cascades(config)
        for endpoint in config.endpoints:
            cascade = cascades.get(endpoint.name)
            keys = [config.find_model(ref) for ref in endpoint.models]
            if cascade is not None or all(m is not None and m.key in clients for m in keys):
                models = tuple(m.key for m in keys if m is not None)
                self.targets[endpoint.name] = Target(endpoint.name, models, endpoint.llm, cascade)

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    def resolve(self, name: str) -> Target:
        """An LLM endpoint by name, else a ``runtime: openai`` model (``name`` or ``name:v``)."""
        target = self.targets.get(name)
        if target is not None:
            return target
        model = self.config.find_model(name)
        if model is not None and model.key in self.clients:
            return Target(f"llm:{model.key}", (model.key,))
        served = sorted(self.targets) + sorted(self.clients)
        raise NotFound(
            f"no LLM endpoint or model {name!r}; served: {', '.join(served) or 'none'}",
            hint="`model` names an endpoint of runtime openai models, or such a model",
        )

    async def handle(
        self, kind: Kind, request: Request, request_id: str, admission: Admission, engine: Engine
    ) -> Response:
        received = time.monotonic()
        client = request.client.host if request.client else None
        try:  # before the body is read: a refused request costs nothing and is not recorded
            authorization = admission.authorization_of(request.headers.getlist("authorization"))
            caller = admission.admit(authorization, "call", client=client)
        except FrugalError as error:
            return _error_response(error, request_id, "-")
        try:  # admitted: from here on every answer has its ledger row, as on the inference routes
            exchange = Exchange(
                dict(request.headers.items()), request.receive, intake=self.intake, client=client
            )
            body = await exchange.read_json(self.config.server.max_body_bytes)
            name = _model_name(body)
            _check_nesting(body)
        except ClientGone:
            return Response(status_code=CLIENT_GONE_STATUS)
        except FrugalError as error:
            engine.recorder.finish(Finished("-", "-", request_id, received, status_of(error),
                                            key=caller.name))  # fmt: skip
            return _error_response(error, request_id, "-")
        try:  # the body names the endpoint: a key not allowed it is refused, not recorded
            admission.check_endpoint(caller, name)
        except FrugalError as error:
            return _error_response(error, request_id, "-")
        call = _Call(self, kind, request_id, received, caller, engine)
        try:
            target = self.resolve(name)
            call.label, call.model = target.label, target.models[0]
            if kind == "embeddings":
                _check_embeddings(body)
                if target.cascade is not None:
                    raise InvalidInput(
                        f"endpoint {name!r} is a cascade, which answers chat completions only",
                        field="model",
                        hint="call /v1/embeddings with one of its models: "
                        + ", ".join(target.models),
                    )
                return await call.json(target, body, UpstreamClient.embeddings)
            payload = _check_chat(body)
            if target.budget is not None:
                payload = apply_budget(payload, target.budget)
            if target.cascade is not None:
                return await call.cascade(target.cascade, payload)
            if payload.get("stream") is True:
                return await call.stream(target, payload)
            return await call.json(target, payload, UpstreamClient.chat)
        except FrugalError as error:
            return call.refuse(error)


@dataclass(slots=True)
class _Call:
    """One request past admission: every way out writes its ledger row exactly once."""

    routes: LLMRoutes
    kind: Kind
    request_id: str
    received: float
    caller: Caller
    engine: Engine
    label: str = "-"
    model: str = "-"

    async def json(
        self,
        target: Target,
        payload: dict[str, Any],
        method: Callable[[UpstreamClient, dict[str, Any]], Awaitable[Completion]],
    ) -> Response:
        clients = self.routes.clients
        result = await first_answer(target.models, lambda m: method(clients[m], payload))
        self.model = result.model
        completion = result.value
        cost = self.record(200, completion.usage, completion.cost_usd, result.route)
        headers = cost_headers(self.request_id, result.model, cost)
        return json_response(completion.body, 200, headers)

    async def stream(self, target: Target, payload: dict[str, Any]) -> Response:
        clients = self.routes.clients
        result = await first_answer(target.models, lambda m: clients[m].stream_chat(payload))
        self.model = result.model
        chars = prompt_chars(payload)
        relay = self._relay(result.value, clients[result.model], chars, result.route)
        return StreamingResponse(relay, 200, self._stream_headers(), media_type="text/event-stream")

    async def cascade(self, cascade: LLMCascade, payload: dict[str, Any]) -> Response:
        """Tiers in order; a streamed request gets a kept answer replayed as SSE chunks, or the
        last tier's stream. Whatever happens, the row has every tier's cost and the route."""
        clients = self.routes.clients
        observe = self.engine.metrics.observe_tier
        streamed = payload.get("stream") is True
        plain = {k: v for k, v in payload.items() if k not in ("stream", "stream_options")}
        spend = CascadeSpend()
        self.model = cascade.models[-1]
        try:
            answer = await cascade.answer(plain, lambda m, body: clients[m].chat(body), spend,
                                          local=self._local, observe=observe,
                                          leave_last=streamed)  # fmt: skip
        except FrugalError as error:
            return self.refuse(error, spend)
        self.model = answer.model
        if answer.completion is not None:
            cost = self.record(200, spend=spend)
            if not streamed:
                headers = cost_headers(self.request_id, answer.model, cost)
                return json_response(answer.completion.body, 200, headers)
            events = _replay(answer.completion.body, cost)
            headers = self._stream_headers() | {"x-frugal-cost-usd": f"{cost:.6e}"}
            return StreamingResponse(events, 200, headers, media_type="text/event-stream")
        client = clients[answer.model]
        try:
            stream = await client.stream_chat(payload)
        except FrugalError as error:
            cascade.settle(spend, answer.model, answered=True, failed=True, observe=observe)
            return self.refuse(error, spend)
        cascade.settle(spend, answer.model, answered=True, failed=False, observe=observe)
        relay = self._relay(stream, client, prompt_chars(payload), spend.route, spend)
        return StreamingResponse(relay, 200, self._stream_headers(), media_type="text/event-stream")

    async def _local(self, model: str, payload: dict[str, Any]) -> LocalRun:
        """A local tier on the chat's text, through that model's batcher like any item; its
        answer is a chat completion whose content is the prediction (``answer_text``)."""
        engine = self.engine
        item = engine.schemas[model].item_from_instance(chat_text(payload), "messages")
        deadline = engine.deadline_for(model, self.received, None)
        [outcome] = await engine.call_model(model, [item], deadline, self.caller.tier)
        if outcome.error is not None or outcome.prediction is None:
            return LocalRun(item, outcome, None)
        body = {
            "id": f"chatcmpl-{self.request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer_text(outcome.prediction.value)},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }  # fmt: skip
        return LocalRun(item, outcome, Completion(body, Usage(), outcome.cost_usd, attempts=1))

    def _stream_headers(self) -> dict[str, str]:
        return {"x-request-id": self.request_id, "x-frugal-model": self.model,
                "cache-control": "no-cache"}  # fmt: skip

    async def _relay(
        self,
        stream: Stream,
        client: UpstreamClient,
        chars: int,
        route: str,
        earlier: CascadeSpend | None = None,
    ) -> AsyncIterator[bytes]:
        """Chunks as they arrive; the cost is recorded when the stream ends, however it ends.

        ``earlier``: what a cascade's tiers before this stream cost; the row adds it.
        """
        status = 200
        try:
            async for chunk in stream.chunks:
                yield chunk
        except FrugalError as error:  # the upstream broke mid-stream: headers are already sent
            status = status_of(error)
            log.warning("request %s: %s", self.request_id, error.message)
        finally:
            usage = stream.usage or Usage(
                estimate_tokens(chars), estimate_tokens(stream.text_chars), exact=False
            )
            cost = client.price(usage)
            if earlier is not None:
                earlier.add(usage, cost, self.model)
                total = self.record(status, route=route, spend=earlier)
            else:
                total = self.record(status, usage, cost, route)
            await stream.chunks.aclose()  # type: ignore[attr-defined]
        yield cost_comment(total)

    def record(self, status: int, usage: Usage | None = None, cost_usd: float = 0.0,
               route: str = "", spend: CascadeSpend | None = None) -> float:  # fmt: skip
        """The row; ``spend``: a cascade's tiers, each tier's dollars named (local tiers by
        their outcomes, upstream ones by their token bills)."""
        if spend is not None:
            usage = spend.usage
        if usage is not None:
            self.engine.metrics.tokens.observe_tokens(self.label, self.caller.name,
                input=usage.prompt_tokens, output=usage.completion_tokens)  # fmt: skip
        if spend is None:
            return self.engine.recorder.finish(Finished(
                self.label, self.model, self.request_id, self.received, status,
                upstream_usd=cost_usd, tokens=usage.total if usage is not None else 0,
                key=self.caller.name, route=route,
            ))  # fmt: skip
        return self.engine.recorder.finish(Finished(
            self.label, self.model, self.request_id, self.received, status,
            outcomes=spend.local, upstream_usd=spend.cost_usd, tokens=spend.usage.total,
            key=self.caller.name, route=route or spend.route,
            upstream_tiers=tuple(spend.upstream),
        ))  # fmt: skip

    def refuse(self, error: FrugalError, spent: CascadeSpend | None = None) -> Response:
        """The error's row; ``spent``: what a cascade's tiers cost before it (still charged)."""
        status = status_of(error)
        if spent is not None and spent.path:
            cost = self.record(status, spend=spent)
        else:
            cost = self.record(status)
        if is_server_fault(error):
            log.warning("request %s: %s", self.request_id, error.message)
        return _error_response(error, self.request_id, self.model, cost)


async def _replay(body: dict[str, Any], cost_usd: float) -> AsyncIterator[bytes]:
    for event in completion_events(body):
        yield event
    yield cost_comment(cost_usd)


def _model_name(body: Any) -> str:
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidInput("must name an LLM endpoint or model", field="model")
    return name


def _check_nesting(body: dict[str, Any]) -> None:
    """Each field at most MAX_FIELD_DEPTH deep, named down to ``messages[i].<key>``."""
    for name, value in body.items():
        if name == "messages" and isinstance(value, list):
            for i, message in enumerate(value):
                if isinstance(message, dict):
                    for key, part in message.items():
                        check_depth(part, f"messages[{i}].{key}", MAX_FIELD_DEPTH)
                else:
                    check_depth(message, f"messages[{i}]", MAX_FIELD_DEPTH)
        else:
            check_depth(value, name, MAX_FIELD_DEPTH)


def _check_chat(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("must be a non-empty list of messages", field="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInput("each message is an object with a `role`", field=f"messages[{i}]")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidInput("must be true or false", field="stream")
    return body


def _check_embeddings(body: dict[str, Any]) -> None:
    given = body.get("input")
    if not (isinstance(given, str) and given) and not (isinstance(given, list) and given):
        raise InvalidInput("must be a string or a non-empty list", field="input")


def _error_response(
    error: FrugalError, request_id: str, model: str | None = None, cost_usd: float = 0.0
) -> Response:
    return as_response(reply_for(error, request_id, model=model, cost_usd=cost_usd))


__all__ = ["LLMRoutes", "Target", "build_clients"]
