"""The naive baseline: FastAPI, a sync endpoint, one request = one model call.

    python bench/naive_server.py --workload w1 --port 8101
    curl -s localhost:8101/predict -H 'content-type: application/json' \
         -d '{"instances": ["The quick brown fox."]}'

This is how most model servers start life: ``def predict`` (not ``async``), which FastAPI runs in
its thread pool (40 threads by default), so concurrent requests each call the model on their own
with a batch of one; no batching, no queue bound. One uvicorn process, log level warning.
``POST /predict`` takes ``{"instances": [...]}`` (W1: one row of 64 floats; W2: one sentence) and
answers ``{"predictions": [...]}``; ``GET /health`` answers once the model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class PredictRequest(BaseModel):  # module level: FastAPI resolves the annotation by name
    instances: list[Any]


def build_app(workload: str, backend: str = "onnx", threads: int = 1) -> FastAPI:
    import models

    options = {} if workload == "w1" else {"backend": backend, "threads": threads}
    model = models.load(workload, **options)

    app = FastAPI(title=f"naive {workload}")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: PredictRequest) -> dict:
        if not body.instances:
            raise HTTPException(status_code=400, detail="instances is empty")
        try:
            return {"predictions": model.predict_batch(body.instances)}
        except (TypeError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--workload", choices=["w1", "w2", "w2-varied"], required=True)
    p.add_argument("--port", type=int, default=8101)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--backend", default="onnx", help="W2 only: onnx | torch")
    p.add_argument("--threads", type=int, default=1, help="W2 only: intra-op threads per call")
    args = p.parse_args(argv)

    import uvicorn

    app = build_app(args.workload, args.backend, args.threads)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, workers=1
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
