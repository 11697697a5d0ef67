"""What frugal's own gRPC bridge costs per ModelInfer call, in-process, without grpc or the model:
the message -> v2 binary body (infer_body), the answer -> ModelInferResponse (infer_response and
its serialization), the metadata -> headers, and the in-process ASGI call with its shield (against
a trivial app). Why: to tell frugal's part of gRPC's CPU per request from grpc.aio's and the
serving path's (bench/grpc_vs_http.py measures the whole).

    python bench/grpc_bridge_micro.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2

from frugal.serving import grpc_bridge as bridge
from frugal.serving.grpc_server import PASSED_METADATA

BODY = (
    b'{"model_name":"digits","model_version":"1","outputs":[{"name":"predict","datatype":"INT64",'
    b'"shape":[1],"parameters":{"binary_data_size":8}},{"name":"confidence","datatype":"FP64",'
    b'"shape":[1],"parameters":{"binary_data_size":8}}]}'
)
HEADERS = [(b"content-type", b"application/octet-stream"), (b"x-request-id", b"abc"),
           (b"x-frugal-cost-usd", b"0.0001"), (b"x-frugal-model", b"digits:1"),
           (b"inference-header-content-length", b"%d" % len(BODY)),
           (b"content-length", b"%d" % (len(BODY) + 16))]  # fmt: skip


async def trivial_app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY + bytes(16)})


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    n = p.parse_args(argv).calls
    request = service_pb2.ModelInferRequest(model_name="digits")
    request.inputs.add(name="pixels", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(np.zeros(64, np.float32).tobytes())
    wire = request.SerializeToString()
    answer = bridge.HttpAnswer(200, {"inference-header-content-length": str(len(BODY))},
                               BODY + bytes(16))  # fmt: skip
    metadata = (("user-agent", "grpc-python"), ("authorization", "Bearer x"))
    path = "/v2/models/digits/infer"

    async def calls(shielded: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            call = bridge.call_app(trivial_app, "POST", path, [], BODY, "127.0.0.1")
            await (asyncio.shield(call) if shielded else call)
        return (time.perf_counter() - t0) / n * 1e6

    rows = {
        "parse request (protobuf)": per_call_us(
            lambda: service_pb2.ModelInferRequest.FromString(wire), n),
        "infer_body": per_call_us(lambda: bridge.infer_body(request), n),
        "infer_response + serialize": per_call_us(
            lambda: bridge.infer_response(answer, service_pb2.ModelInferResponse(), [])
            .SerializeToString(), n),
        "raw_headers": per_call_us(lambda: bridge.raw_headers(metadata, PASSED_METADATA), n),
        "call_app (trivial app)": asyncio.run(calls(False)),
        "shield(call_app)": asyncio.run(calls(True)),
    }  # fmt: skip
    for name, us in rows.items():
        print(f"{name:28s} {us:7.2f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
