"""LitServe with dynamic batching: the off-the-shelf batching server to compare frugal against.

    python bench/litserve_server.py --workload w2 --port 8102

LitAPI with ``max_batch_size=32, batch_timeout=0.005`` (LitServe 0.2.x puts batching on the
LitAPI), one inference worker process on CPU, one API server process (uvicorn, log level
warning). Same shapes as the naive server: ``POST /predict`` with ``{"instances": [...]}`` ->
``{"predictions": [...]}``; ``GET /health`` (LitServe's own) is 200 once the worker is ready.

LitServe runs the HTTP side and the model in separate processes joined by queues, so measure CPU
and memory over the whole process tree (bench/loadgen.py does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import litserve as ls


class BatchedAPI(ls.LitAPI):
    """decode -> batch (per-request instance lists) -> predict (one model call) -> unbatch."""

    def __init__(self, workload: str, backend: str, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workload = workload
        self.backend = backend
        self.threads = threads

    def setup(self, device: Any) -> None:
        import models

        options = (
            {} if self.workload == "w1" else {"backend": self.backend, "threads": self.threads}
        )
        self.model = models.load(self.workload, **options)

    def decode_request(self, request: dict, **kwargs: Any) -> list:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValueError("instances must be a non-empty list")
        return instances

    def batch(self, inputs: list[list]) -> list[list]:
        return inputs  # keep each request's instances apart; predict flattens

    def predict(self, x: list[list], **kwargs: Any) -> list[list]:
        flat = [item for request in x for item in request]
        out = list(self.model.predict_batch(flat))
        answers, i = [], 0
        for request in x:
            answers.append(out[i : i + len(request)])
            i += len(request)
        return answers

    def unbatch(self, output: list[list]) -> list[list]:
        return output

    def encode_response(self, output: list, **kwargs: Any) -> dict:
        return {"predictions": output}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workload", choices=["w1", "w2", "w2-varied"], required=True)
    p.add_argument("--port", type=int, default=8102)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--backend", default="onnx", help="W2 only: onnx | torch")
    p.add_argument("--threads", type=int, default=1, help="W2 only: intra-op threads per batch")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    args = p.parse_args(argv)

    api = BatchedAPI(
        args.workload,
        args.backend,
        args.threads,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.run(
        host=args.host,
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
