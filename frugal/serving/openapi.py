"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the config.

Each endpoint and model gets its own path with the exact shape of one instance (from the model's
declared inputs), so generated clients and the fuzzer (schemathesis, in the test suite) know
what a valid request is. Written by hand rather than derived from the routes: the inference
routes are raw ASGI, and their bodies depend on the config, not on Python signatures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import frugal
from frugal.access import BUDGET_USD_DAY_MAX, RPS_MAX, RPS_MIN, TIER_MAX_CHARS, TOKENS_DAY_MAX
from frugal.config import FrugalConfig, ModelConfig, TensorSpec
from frugal.serving.dashboard_routes import dashboard_openapi_paths

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def value_schema(datatype: str) -> Schema:
    """One element of a tensor, with the range its dtype holds (values outside get a 400)."""
    if datatype == "BYTES":
        return {"type": "string"}
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype.startswith("FP"):
        limit = float(np.finfo(getattr(np, {"FP16": "float16", "FP32": "float32",
                                            "FP64": "float64"}[datatype])).max)  # fmt: skip
        return {"type": "number", "minimum": -limit, "maximum": limit}
    info = np.iinfo(getattr(np, datatype.lower()))
    return {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}


def row_schema(spec: TensorSpec) -> Schema:
    """One item of an input: its shape without the batch dimension."""
    schema = value_schema(spec.datatype)
    for dim in reversed(spec.shape[1:]):
        schema = {"type": "array", "items": schema} | (
            {"minItems": dim, "maxItems": dim} if dim > 0 else {"minItems": 1}
        )
    return schema


def instance_schema(model: ModelConfig) -> Schema:
    if not model.inputs:
        return {"description": "any JSON value the model accepts (no inputs declared)"}
    if len(model.inputs) == 1:
        return row_schema(model.inputs[0])
    return {
        "type": "object",
        "properties": {s.name: row_schema(s) for s in model.inputs},
        "required": [s.name for s in model.inputs],
    }


def _tensor_schema(spec: TensorSpec | None) -> Schema:
    names = {"enum": [spec.name]} if spec is not None else {"type": "string"}
    data = {"type": "array", "minItems": 1}
    if spec is not None:
        data["items"] = {"anyOf": [value_schema(spec.datatype), {"type": "array"}]}
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"} | names,
            "shape": {"type": "array", "minItems": 1,
                      "items": {"type": "integer", "minimum": 1, "maximum": 1024}},
            "datatype": {"enum": [spec.datatype]} if spec is not None else {"type": "string"},
            "data": data,
            "parameters": {"type": "object"},
        },
    }  # fmt: skip


def _infer_request(model: ModelConfig) -> Schema:
    tensors: Schema = (
        {"type": "array", "minItems": 1, "items": _tensor_schema(None)}
        if not model.inputs
        else {"type": "array", "minItems": len(model.inputs), "maxItems": len(model.inputs),
              "items": {"anyOf": [_tensor_schema(s) for s in model.inputs]}}
    )  # fmt: skip
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                       "inputs": tensors, "outputs": {"type": "array"}},
    }  # fmt: skip


_COMMON_ERRORS = {
    "400": _error("The request is malformed; `field` names what is wrong."),
    "401": _error("No API key, or an unknown, rotated or revoked one."),
    "403": _error(
        "The key's role or endpoint list does not allow this (on v2 inference: "
        "its endpoints do not route to this version; `field` is `version`)."
    ),
    "413": _error("The body is over server.max_body_bytes (admin routes: 64 KiB)."),
    "429": _error("The key's rate limit (Retry-After) or daily budget (`budget`) is spent."),
    "431": _error("The headers are over server.max_header_bytes."),
}
_SERVING_ERRORS = _COMMON_ERRORS | {
    "404": _error("No such endpoint, model or version."),
    "500": _error("The model failed on every item (the body names the model)."),
    "503": _error("The model's queue is full, or the server is at max_concurrency."),
    "504": _error("The deadline passed before the answer."),
}


def _predict_path(name: str, model: ModelConfig) -> Schema:
    body = {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "minItems": 1, "maxItems":
                                     model.batching.max_queue,
                                     "items": instance_schema(model)}},
    }  # fmt: skip
    return {"post": {
        "summary": f"Predict with endpoint {name} (model {model.key})",
        "operationId": f"predict_{name}",
        "tags": ["v1"],
        "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
        "responses": {"200": _ok(_ref("PredictResponse"))} | _SERVING_ERRORS,
    }}  # fmt: skip


_LABEL: Schema = {"type": ["number", "string", "boolean", "null"]}


def _feedback_path(name: str) -> Schema:
    body = {
        "type": "object", "additionalProperties": False, "required": ["request_id"],
        "properties": {"request_id": {"type": "string", "minLength": 1}, "label": _LABEL,
                       "labels": {"type": "array", "items": _LABEL}},
    }  # fmt: skip
    operation = _post(f"True labels of a request endpoint {name} answered, for its cascade's "
                      "drift check (docs/routing.md#drift-check-while-serving)", body,
                      {"type": "object"}, "v1")["post"]  # fmt: skip
    operation["operationId"] = f"feedback_{name}"
    operation["requestBody"]["required"] = True
    operation["responses"]["404"] = _error("No such endpoint, no drift check, or no answer "
                                           "with that request id awaits labels.")  # fmt: skip
    return {"post": operation}


def _infer_path(model: ModelConfig, versioned: bool) -> Schema:
    return {"post": {
        "summary": f"Open Inference Protocol v2 inference on {model.key}",
        "operationId": f"infer_{model.name}_{model.version}" if versioned
        else f"infer_{model.name}",
        "tags": ["v2"],
        "requestBody": {"required": True, "content": {JSON: {"schema": _infer_request(model)}}},
        "responses": {"200": _ok(_ref("InferResponse"))} | _SERVING_ERRORS,
    }}  # fmt: skip


def _get(summary: str, schema: Schema, tag: str, errors: bool = True) -> Schema:
    responses = {"200": _ok(schema)} | (_COMMON_ERRORS if errors else {})
    return {"get": {"summary": summary, "tags": [tag], "responses": responses}}


def _post(summary: str, body: Schema | None, schema: Schema, tag: str, ok: str = "200") -> Schema:
    operation: Schema = {"summary": summary, "tags": [tag],
                         "responses": {ok: _ok(schema)} | _COMMON_ERRORS
                         | {"404": _error("No such key or endpoint.")}}  # fmt: skip
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {JSON: {"schema": body}}}
    return {"post": operation}


_OPTIONAL_STR = {"type": ["string", "null"]}
_OPTIONAL_NUM = {"type": ["number", "null"], "exclusiveMinimum": 0}
SCHEMAS: dict[str, Schema] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"}, "field": {"type": "string"}, "hint": {"type": "string"},
        "request_id": {"type": "string"}, "budget": {"type": "object"}}},
    "PredictResponse": {"type": "object", "required": ["predictions"],
                        "properties": {"predictions": {"type": "array"}}},
    "InferResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"},
        "id": {"type": "string"}, "outputs": {"type": "array"}}},
    "ModelMetadata": {"type": "object", "required": ["name", "versions", "platform", "inputs"],
                      "properties": {"name": {"type": "string"}, "versions": {"type": "array"},
                                     "platform": {"type": "string"},
                                     "inputs": {"type": "array"}, "outputs": {"type": "array"}}},
    "Key": {"type": "object", "required": ["name", "role"], "properties": {
        "name": {"type": "string"}, "role": {"enum": ["user", "viewer", "admin"]},
        "tier": _OPTIONAL_STR, "endpoints": {"type": ["array", "null"]},
        "rps": {"type": ["number", "null"]}, "budget_usd_day": {"type": ["number", "null"]},
        "tokens_day": {"type": ["integer", "null"]}, "secret": {"type": "string"}}},
    "KeyCreate": {"type": "object", "required": ["name"], "additionalProperties": False,
                  "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "role": {"enum": ["user", "viewer", "admin"]},
        "tier": {"type": ["string", "null"], "maxLength": TIER_MAX_CHARS},
        "endpoints": {"type": ["array", "null"], "items": {"type": "string"}},
        "rps": {"type": ["number", "null"], "minimum": RPS_MIN, "maximum": RPS_MAX},
        "budget_usd_day": _OPTIONAL_NUM | {"maximum": BUDGET_USD_DAY_MAX},
        "tokens_day": {"type": ["integer", "null"], "minimum": 1, "maximum": TOKENS_DAY_MAX}}},
}  # fmt: skip


_LLM_ERRORS = _SERVING_ERRORS | {
    "404": _error("`model` names no LLM endpoint or runtime openai model."),
    "502": _error("The upstream failed on every attempt and every fallback model."),
    "504": _error("The upstream did not answer within upstream.timeout_s."),
}


def _llm_paths(config: FrugalConfig) -> dict[str, Schema]:
    """OpenAI's request and answer shapes, loosely: the upstream checks the rest."""
    names = [
        e.name
        for e in config.endpoints
        if all((m := config.find_model(r)) and m.upstream is not None for r in e.models)
    ]
    names += [m.name for m in config.upstream_models]
    model: Schema = {"type": "string", "minLength": 1}
    if names:
        model = {"enum": sorted(set(names))}
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {"role": {"type": "string"}, "content": {}},
    }
    chat = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": model,
            "messages": {"type": "array", "minItems": 1, "items": message},
            "stream": {"type": "boolean"},
            "max_tokens": {"type": "integer", "minimum": 1},
        },
    }
    embed = {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": model,
            "input": {
                "anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1}]
            },
        },
    }
    chat_ok = {
        "description": "The upstream's chat completion (text/event-stream when "
        "`stream` is true, ending with an SSE comment carrying the cost)",
        "content": {JSON: {"schema": {"type": "object"}}, "text/event-stream": {}},
    }
    return {
        "/v1/chat/completions": {"post": {
            "summary": "OpenAI-compatible chat completion over upstream LLMs (docs/llm.md)",
            "operationId": "chat_completions", "tags": ["llm"],
            "requestBody": {"required": True, "content": {JSON: {"schema": chat}}},
            "responses": {"200": chat_ok} | _LLM_ERRORS}},
        "/v1/embeddings": {"post": {
            "summary": "OpenAI-compatible embeddings over upstream LLMs (docs/llm.md)",
            "operationId": "embeddings", "tags": ["llm"],
            "requestBody": {"required": True, "content": {JSON: {"schema": embed}}},
            "responses": {"200": _ok({"type": "object"})} | _LLM_ERRORS}},
    }  # fmt: skip


def _route_admin(config: FrugalConfig) -> Schema:
    """A split's weights (docs/rollouts.md): read, or change with exactly one action."""
    weights = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
    change = {
        "type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
        "properties": {"weights": weights, "promote": {"type": "string"},
                       "rollback": {"const": True}},
    }  # fmt: skip
    state = {"type": "object", "properties": {
        "endpoint": {"type": "string"}, "weights": weights, "configured": weights,
        "baseline": {"type": "string"}, "sticky": {"type": "boolean"}}}  # fmt: skip
    changed = {"type": "object", "properties": {
        "endpoint": {"type": "string"}, "before": weights, "after": weights}}  # fmt: skip
    operations = _get("A split's current and configured weights", state, "admin") | _post(
        "Set weights, promote a version or roll back (audited)", change, changed, "admin"
    )
    operations["get"]["responses"]["404"] = _error("No such endpoint, or it has no split.")
    splits = [e.name for e in config.endpoints if e.route is not None and e.route.split]
    name: Schema = {"enum": splits} if splits else {"type": "string"}
    parameter = {"name": "endpoint", "in": "path", "required": True, "schema": name}
    for operation in operations.values():
        operation["parameters"] = [parameter]
    return operations


def openapi_document(config: FrugalConfig) -> Schema:
    paths: dict[str, Schema] = {
        "/v2": _get("Server metadata (v2)", {"type": "object"}, "v2"),
        "/v2/health/live": _get("Liveness", {"type": "object"}, "health", errors=False),
        "/v2/health/ready": {"get": {
            "summary": "Readiness (503 while starting or draining)", "tags": ["health"],
            "responses": {"200": _ok({"type": "object"}),
                          "503": _ok({"type": "object"}, "Not ready")}}},
        "/v1/endpoints": _get("Endpoints served", {"type": "array"}, "v1"),
        "/metrics": {"get": {"summary": "Prometheus metrics (viewer or admin)",
                             "tags": ["observability"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {}}}}
                             | _COMMON_ERRORS}},
        "/openapi.json": _get("This document", {"type": "object"}, "meta", errors=False),
        "/admin/cache/invalidate": _post(
            "Drop cache entries of an endpoint and/or model (all when both are absent)",
            {"type": "object", "additionalProperties": False,
             "properties": {"endpoint": _OPTIONAL_STR, "model": _OPTIONAL_STR}},
            {"type": "object", "properties": {"invalidated": {"type": "integer"}}}, "admin"),
        "/admin/cache/stats": _get("Cache size, hits and savings per endpoint",
                                   {"type": "object"}, "admin"),
        "/admin/keys": _get("API keys (never their secrets)",
                            {"type": "array", "items": _ref("Key")}, "admin")
        | _post("Create an API key; the answer is the only place its secret appears",
                _ref("KeyCreate"), _ref("Key"), "admin", ok="201"),
        "/admin/keys/{key}/revoke": _post("Revoke a key", None, _ref("Key"), "admin"),
        "/admin/keys/{key}/rotate": _post("New secret for a key; the old one stops working",
                                          None, _ref("Key"), "admin"),
    }  # fmt: skip
    paths["/admin/endpoints/{endpoint}/route"] = _route_admin(config)
    paths["/admin/controller"] = _get(
        "The policy controller's knobs, bounds, readings and recent changes (docs/controller.md)",
        {"type": "object", "properties": {"interval_s": {"type": "number"},
         "window_s": {"type": "number"}, "knobs": {"type": "array"},
         "changes": {"type": "array"}}}, "admin")  # fmt: skip
    if config.controller is None or not config.controller.enabled:
        paths["/admin/controller"]["get"]["responses"]["404"] = _error("No `controller` section.")
    for path in ("/admin/keys/{key}/revoke", "/admin/keys/{key}/rotate"):
        paths[path]["post"]["parameters"] = [
            {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    paths["/admin/keys"]["post"]["responses"]["409"] = _error("A key with that name exists.")
    paths |= _llm_paths(config)
    paths |= dashboard_openapi_paths(_COMMON_ERRORS | {"404": _error("No such file.")})
    for endpoint in config.endpoints:
        model = config.find_model(endpoint.models[0])  # a cascade's tiers share its inputs
        assert model is not None
        if model.upstream is not None:
            continue  # served by /v1/chat/completions and /v1/embeddings
        paths[f"/v1/endpoints/{endpoint.name}/predict"] = _predict_path(endpoint.name, model)
        # Served for every endpoint; answers 404 unless its cascade has a drift check.
        paths[f"/v1/endpoints/{endpoint.name}/feedback"] = _feedback_path(endpoint.name)
    served = config.local_models
    latest = {m.name: m for m in served}
    for model in served:
        meta = _get(f"Metadata of {model.key}", _ref("ModelMetadata"), "v2")
        meta["get"]["responses"]["404"] = _error("No such model or version.")
        ready = {"get": {"summary": f"Readiness of {model.key}", "tags": ["v2"],
                         "responses": {"200": _ok({"type": "object"}),
                                       "503": _ok({"type": "object"}, "Not ready")}
                         | _COMMON_ERRORS}}  # fmt: skip
        base = f"/v2/models/{model.name}/versions/{model.version}"
        paths[base] = meta
        paths[f"{base}/ready"] = ready
        paths[f"{base}/infer"] = _infer_path(model, versioned=True)
        if latest[model.name] is model:
            paths[f"/v2/models/{model.name}"] = meta
            paths[f"/v2/models/{model.name}/ready"] = ready
            paths[f"/v2/models/{model.name}/infer"] = _infer_path(model, versioned=False)
    document: Schema = {
        "openapi": "3.1.0",
        "info": {"title": "frugal", "version": frugal.__version__,
                 "description": "Model serving at the lowest cost per request. Every answer "
                 "carries x-frugal-cost-usd, x-frugal-model and x-request-id."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }  # fmt: skip
    if config.auth is not None:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "a frugal API key"}
        }
        document["security"] = [{"bearer": []}]
        for path in ("/v2/health/live", "/v2/health/ready", "/openapi.json"):
            paths[path]["get"]["security"] = []
    return document


__all__ = ["instance_schema", "openapi_document", "row_schema", "value_schema"]
