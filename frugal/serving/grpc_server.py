"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), with grpc.aio on
``server.grpc_port``, in the app's own process and event loop.

Every method is the HTTP request it corresponds to, answered by the app's dispatcher in-process
(serving/grpc_bridge.py): the same shedding, admission, cache, routing, batcher, ledger and
costs. The HTTP answer becomes the response, a status code (``GRPC_CODES``) with the same
message, and trailing metadata: ``x-request-id``, ``x-frugal-model``, ``x-frugal-cost-usd``,
``x-frugal-cache``, and ``retry-after`` with ``grpc-retry-pushback-ms`` where HTTP would say
Retry-After. The message types are tritonclient's own generated modules (the ``grpc`` extra):
the very ``grpc_service.proto`` every Triton client speaks, with nothing generated here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from frugal.errors import FrugalError
from frugal.serving.errors import reply_for, status_of
from frugal.serving.grpc_bridge import (
    PASSED_METADATA,
    HttpAnswer,
    call_app,
    infer_body,
    infer_response,
    model_path,
    raw_headers,
)
from frugal.serving.request_ids import new_request_id
from frugal.serving.v2_binary import BINARY_MEDIA, HEADER

if TYPE_CHECKING:
    from frugal.serving.app import FrugalApp

log = logging.getLogger("frugal.serving")
Code = grpc.StatusCode
# HTTP status -> gRPC status code (docs/protocols.md#grpc). 503 is RESOURCE_EXHAUSTED while the
# server is ready (an overload: try again shortly) and UNAVAILABLE while it loads or drains.
GRPC_CODES: dict[int, Any] = {
    400: Code.INVALID_ARGUMENT, 401: Code.UNAUTHENTICATED, 403: Code.PERMISSION_DENIED,
    404: Code.NOT_FOUND, 405: Code.UNIMPLEMENTED, 408: Code.DEADLINE_EXCEEDED,
    409: Code.FAILED_PRECONDITION, 413: Code.RESOURCE_EXHAUSTED, 415: Code.INVALID_ARGUMENT,
    429: Code.RESOURCE_EXHAUSTED, 431: Code.INVALID_ARGUMENT, 500: Code.INTERNAL,
    502: Code.UNAVAILABLE, 503: Code.RESOURCE_EXHAUSTED, 504: Code.DEADLINE_EXCEEDED,
}  # fmt: skip
ANSWER_METADATA = ("x-request-id", "x-frugal-model", "x-frugal-cost-usd", "x-frugal-cache",
                   "retry-after")  # fmt: skip
# A gRPC message may be this much larger than server.max_body_bytes: the v2 body it becomes is
# checked against the limit itself (a 413, RESOURCE_EXHAUSTED, with the HTTP path's message).
MESSAGE_SLACK_BYTES = 65_536
_BINARY_TYPE = (b"content-type", BINARY_MEDIA.encode())
_HEADER = HEADER.encode()
UNSERVED = (
    "ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad",
    "RepositoryModelUnload", "SystemSharedMemoryStatus", "SystemSharedMemoryRegister",
    "SystemSharedMemoryUnregister", "CudaSharedMemoryStatus", "CudaSharedMemoryRegister",
    "CudaSharedMemoryUnregister", "TraceSetting", "LogSettings",
)  # fmt: skip


def grpc_code(status: int, ready: bool) -> Any:
    if status == 503 and not ready:
        return Code.UNAVAILABLE
    return GRPC_CODES.get(status, Code.INTERNAL if status >= 500 else Code.INVALID_ARGUMENT)


@functools.lru_cache(maxsize=1024)
def peer_host(peer: str) -> str | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` -> the address (rate limits, loopback)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    def __init__(self, app: FrugalApp) -> None:
        self.app = app

    async def _call(
        self, context: Any, method: str, path: str, body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (), ok: tuple[int, ...] = (200,),
    ) -> HttpAnswer:  # fmt: skip
        """The request, answered by the app; an answer not in ``ok`` aborts the call with its
        code and message. The work is shielded: a call cancelled or past its deadline still
        finishes inside (answered, recorded and charged as on HTTP), its answer unsent."""
        sent = raw_headers(context.invocation_metadata(), PASSED_METADATA)
        sent.extend(headers)
        remaining = context.time_remaining()
        if remaining is not None:  # the gRPC deadline is frugal's deadline
            sent.append((b"x-frugal-deadline-ms", b"%.3f" % max(remaining * 1000.0, 0.001)))
        answer = await asyncio.shield(
            call_app(self.app, method, path, sent, body, peer_host(context.peer()))
        )
        metadata = [(k, answer.headers[k]) for k in ANSWER_METADATA if k in answer.headers]
        if "retry-after" in answer.headers:
            pushback_ms = int(float(answer.headers["retry-after"]) * 1000)
            metadata.append(("grpc-retry-pushback-ms", str(pushback_ms)))
        context.set_trailing_metadata(tuple(metadata))
        if answer.status not in ok:
            await context.abort(grpc_code(answer.status, self.app.is_ready), _message(answer))
        return answer

    async def _refuse(self, context: Any, error: FrugalError) -> None:
        """A request refused before it could become an HTTP one (a malformed message)."""
        reply = reply_for(error, new_request_id())
        context.set_trailing_metadata((("x-request-id", reply.headers["x-request-id"]),))
        await context.abort(grpc_code(status_of(error), True), error.message)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        answer = await self._call(context, "GET", "/v2/health/live")
        return service_pb2.ServerLiveResponse(live=bool(answer.json()["live"]))

    async def ServerReady(self, request: Any, context: Any) -> Any:
        answer = await self._call(context, "GET", "/v2/health/ready", ok=(200, 503))
        return service_pb2.ServerReadyResponse(ready=bool(answer.json()["ready"]))

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            path = model_path(request.name, request.version, "/ready")
        except FrugalError as error:
            await self._refuse(context, error)
        answer = await self._call(context, "GET", path, ok=(200, 503))
        body = answer.json()
        return service_pb2.ModelReadyResponse(ready=bool(body.get("ready", False)))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        body = (await self._call(context, "GET", "/v2")).json()
        return service_pb2.ServerMetadataResponse(
            name=body["name"], version=body["version"], extensions=body["extensions"]
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            path = model_path(request.name, request.version)
        except FrugalError as error:
            await self._refuse(context, error)
        body = (await self._call(context, "GET", path)).json()
        meta = service_pb2.ModelMetadataResponse
        return meta(
            name=body["name"], versions=body["versions"], platform=body["platform"],
            inputs=[meta.TensorMetadata(**t) for t in body["inputs"]],
            outputs=[meta.TensorMetadata(**t) for t in body["outputs"]],
        )  # fmt: skip

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        try:
            path = model_path(request.model_name, request.model_version, "/infer")
            body, header_length = infer_body(request)
        except FrugalError as error:
            await self._refuse(context, error)
        headers = (_BINARY_TYPE, (_HEADER, b"%d" % header_length))
        answer = await self._call(context, "POST", path, body, headers)
        requested = [o.name for o in request.outputs]
        return infer_response(answer, service_pb2.ModelInferResponse(), requested)

    async def ModelStreamInfer(self, request_iterator: Any, context: Any) -> None:
        await context.abort(Code.UNIMPLEMENTED, "streaming is not served; call ModelInfer")


def _unserved(name: str) -> Any:
    async def method(self: InferenceService, request: Any, context: Any) -> Any:
        await context.abort(Code.UNIMPLEMENTED, f"{name} is not served by frugal")

    method.__name__ = name
    return method


for _name in UNSERVED:
    setattr(InferenceService, _name, _unserved(_name))


def _message(answer: HttpAnswer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status}"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else f"HTTP {answer.status}"


class GrpcServer:
    """grpc.aio on the app's loop: started with the app, stopped gracefully at its drain."""

    def __init__(self, app: FrugalApp, host: str, port: int, max_body_bytes: int) -> None:
        self.app = app
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = port
        self.options = [
            ("grpc.max_receive_message_length", max_body_bytes + MESSAGE_SLACK_BYTES),
            ("grpc.so_reuseport", 1),  # one port for every --workers process
        ]
        self._server: Any = None
        self._stopping: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Listens, and returns the port (the one picked, for ``server.grpc_port: 0``)."""
        server = grpc.aio.server(options=self.options)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceService(self.app), server
        )
        try:
            self.port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise OSError(f"gRPC cannot listen on {self.address}: {exc}") from None
        await server.start()
        self._server = server
        log.info("gRPC (inference.GRPCInferenceService) on %s", self.address)
        return self.port

    def begin_stop(self, grace_s: float) -> None:
        """New calls are refused (UNAVAILABLE) from now; open ones have ``grace_s``."""
        if self._server is not None and self._stopping is None:
            self._stopping = asyncio.ensure_future(self._server.stop(grace_s))

    async def stop(self, grace_s: float) -> None:
        self.begin_stop(grace_s)
        if self._stopping is not None:
            await self._stopping


__all__ = ["GRPC_CODES", "GrpcServer", "InferenceService", "grpc_code", "peer_host"]
