"""The two hot routes, after the ASGI dispatcher matched them: simple JSON predict and v2 infer.

Each request: admission (before its body is read: a refused request costs nothing and is not
recorded), then the engine, then exactly one ``Finished`` for the recorder and one reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from frugal.access import Capture
from frugal.accounting.ledger import PayloadRow
from frugal.config import FrugalConfig
from frugal.errors import Forbidden, FrugalError, InvalidInput, ModelFailed, NotFound
from frugal.runtimes import MAX_NESTING_DEPTH, check_depth
from frugal.serving.admission import Admission, Caller
from frugal.serving.codecs import (
    decode_infer_request,
    decode_predict_request,
    encode_infer_response,
    encode_predict_response,
)
from frugal.serving.engine import Answer, Engine
from frugal.serving.errors import CRASH_STATUS, cost_headers, reply_for, status_of
from frugal.serving.exchange import DUPLICATE_HEADER, Exchange, Reply, json_reply
from frugal.serving.recorder import Finished
from frugal.serving.v2_binary import read_infer_body

log = logging.getLogger("frugal.serving")


class Inference:
    """Answers ``POST /v1/endpoints/{endpoint}/predict`` and ``/v2/models/.../infer``."""

    def __init__(self, config: FrugalConfig, engine: Engine, admission: Admission) -> None:
        self.max_body_bytes = config.server.max_body_bytes
        self.engine = engine
        self.admission = admission
        self.recorder = engine.recorder
        self.captures = {
            e.name: Capture(e.capture) for e in config.endpoints if e.capture is not None
        }
        # What a key's endpoint list grants on the v2 routes: the versions each endpoint's route
        # may call (a pinned model, a split's versions, a cascade's tiers; not its shadow).
        self.grants = {name: frozenset(ep.router.models) for name, ep in engine.endpoints.items()}

    async def handle(
        self, kind: str, exchange: Exchange, params: dict[str, str], client: str | None,
        request_id: str,
    ) -> Reply:  # fmt: skip
        target = params["endpoint"] if kind == "predict" else params["name"]
        try:
            if DUPLICATE_HEADER in exchange.headers:
                raise self.admission.duplicate_authorization()
            caller = self.admission.admit(
                exchange.headers.get("authorization"), "call",
                endpoint=target if kind == "predict" else None, client=client,
            )  # fmt: skip
            if caller.key is None:  # without auth a request may name its tier (no elevation)
                caller = caller.with_tier_header(exchange.headers.get("x-frugal-tier"))
            if kind == "infer":
                self._check_grant(caller, target, params.get("version"))
        except FrugalError as error:
            return reply_for(error, request_id)
        if kind == "predict":
            return await self.predict(exchange, target, caller, request_id)
        return await self.infer(exchange, target, params.get("version"), caller, request_id)

    def _check_grant(self, caller: Caller, name: str, version: str | None) -> None:
        """A key limited to endpoints calls, on v2, only the versions those endpoints route to:
        the v2 routes skip the endpoint's route, so the endpoint's name alone grants nothing
        (docs/security.md). Admins and keys without a list may call every version."""
        key = caller.key
        if key is None or key.role == "admin" or key.endpoints is None:
            return
        try:
            model = self.engine.resolve_model(name, version)
        except NotFound:
            return  # answered (and recorded) by infer, as for any caller
        granted = sorted({m for ep in key.endpoints for m in self.grants.get(ep, ())})
        if model in granted:
            return
        self.admission.metrics.observe_refusal("forbidden")
        versions = [m.partition(":")[2] for m in granted if m.partition(":")[0] == name]
        allowed = ", ".join(granted) or "no model version"
        if versions:
            asked = model if version else f"{model} (the latest version of {name})"
            raise Forbidden(
                f"key {key.name!r} may not call {asked}: its endpoints route to {allowed}",
                field="version",
                hint=f"call /v2/models/{name}/versions/{versions[0]}/infer",
            )
        raise Forbidden(
            f"key {key.name!r} may not call model {model}: its endpoints route to {allowed}",
            field="model",
            hint=f"call POST /v1/endpoints/{{endpoint}}/predict with one of: "
            f"{', '.join(key.endpoints) or 'none'}",
        )

    async def infer(
        self, exchange: Exchange, name: str, version: str | None, caller: Caller, request_id: str
    ) -> Reply:
        received = time.monotonic()
        engine = self.engine
        model = "-"
        try:
            model = engine.resolve_model(name, version)
            label = f"v2:{model}"
            deadline = engine.deadline_for(model, received, deadline_header(exchange.headers))
            request = await read_infer_body(exchange, self.max_body_bytes)  # JSON or binary
            given_id, tensors = decode_infer_request(request.body)
            answer = await engine.infer(model, tensors, deadline=deadline, tier=caller.tier)
            error = answer.first_error
            if error is not None:  # v2 tensors are all or nothing
                return self._refuse(label, model, request_id, received, error, caller, answer)
            model_name, _, model_version = model.partition(":")
            out = encode_infer_response(model_name, model_version, given_id, answer.outcomes)
            return self._answer(label, request_id, received, answer, out, caller, request.encode)
        except FrugalError as error:
            return self._refuse(f"v2:{model}", model, request_id, received, error, caller)

    async def predict(
        self, exchange: Exchange, endpoint: str, caller: Caller, request_id: str
    ) -> Reply:
        received = time.monotonic()
        engine = self.engine
        label, model = "-", "-"
        try:
            ep = engine.endpoint(endpoint)
            label, model = ep.name, ep.model
            deadline = engine.endpoint_deadline(ep, received, deadline_header(exchange.headers))
            body = await exchange.read_json(self.max_body_bytes)
            capture = self.captures.get(endpoint)
            if capture is not None and isinstance(body, dict):
                _check_capturable(body)
            instances = decode_predict_request(body)
            answer = await engine.predict(
                ep, instances, deadline=deadline,
                user=caller.user_scope(exchange.headers.get("x-frugal-user")),
                session=exchange.headers.get("x-frugal-session"), tier=caller.tier,
                request_id=request_id, key=caller.name,
            )  # fmt: skip
            error = answer.first_error
            if error is not None and answer.all_failed:
                failed_by = answer.model_header or model  # a split: the version that failed
                return self._refuse(label, failed_by, request_id, received, error, caller, answer)
            out = encode_predict_response(answer.outcomes)
            reply = self._answer(label, request_id, received, answer, out, caller)
            if capture is not None and reply.status == 200 and capture.wanted():
                self._capture(capture, endpoint, request_id, caller, body, out)
            return reply
        except FrugalError as error:
            return self._refuse(label, model, request_id, received, error, caller)

    def _capture(
        self, capture: Capture, endpoint: str, request_id: str, caller: Caller, request: Any,
        response: Any,
    ) -> None:  # fmt: skip
        ledger = self.recorder.ledger
        if ledger is None:
            return
        now = time.time()
        ledger.record_payload(PayloadRow(
            ts=now, request_id=request_id, endpoint=endpoint, key=caller.name,
            request=capture.encode(request), response=capture.encode(response),
            expires=now + capture.retention_s,
        ))  # fmt: skip

    def _answer(
        self, label: str, request_id: str, received: float, answer: Answer, body: Any,
        caller: Caller, encode: Callable[[Any, int, dict[str, str]], Reply] = json_reply,
    ) -> Reply:  # fmt: skip
        model = answer.model_header
        try:  # encode first: an answer that cannot be sent must not be recorded as a 200
            reply = encode(body, 200, {"x-frugal-cache": answer.cache})
        except TypeError as exc:
            error = ModelFailed(
                f"model {model} returned a value that is not JSON: {exc}",
                hint="return numbers, strings, lists, dicts or numpy values from predict_batch",
            )
            return self._refuse(label, model, request_id, received, error, caller, answer)
        cost = self.recorder.finish(Finished(
            label, model, request_id, received, 200, outcomes=answer.outcomes, key=caller.name,
            cache=answer.cache, saved_usd=answer.saved_usd, route=answer.route,
            degraded=answer.degraded, tier=caller.tier or "",
        ))  # fmt: skip
        reply.headers.update(cost_headers(request_id, model, cost))
        return reply

    def _refuse(
        self, label: str, model: str, request_id: str, received: float, error: FrugalError,
        caller: Caller, answer: Answer | None = None,
    ) -> Reply:  # fmt: skip
        """The error's reply and row; if the model ran, what it consumed is spent and charged."""
        status = status_of(error)
        outcomes = answer.outcomes if answer is not None else ()
        cost = self.recorder.finish(
            Finished(
                label,
                model,
                request_id,
                received,
                status,
                outcomes=outcomes,
                key=caller.name,
                tier=caller.tier or "",
            )
        )
        if status == CRASH_STATUS:
            log.warning("request %s: %s", request_id, error.message)
        return reply_for(error, request_id, model=model, cost_usd=cost)


def _check_capturable(body: dict[str, Any]) -> None:
    """A body an endpoint may capture is written back as JSON after the answer (orjson stops at
    254 levels, the redactor recurses): each field nests at most as deep as ``instances`` may,
    checked before the model runs, so a capture can never fail an answered request."""
    for name, value in body.items():
        check_depth(value, name, MAX_NESTING_DEPTH + 1)  # instances: the list, then one instance


def deadline_header(headers: dict[str, str]) -> float | None:
    raw = headers.get("x-frugal-deadline-ms")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InvalidInput(
            "must be a positive number of milliseconds", field="x-frugal-deadline-ms"
        )
    return value


__all__ = ["Inference", "deadline_header"]
