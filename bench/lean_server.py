"""The least a batching JSON model server does per request: W1's work with none of frugal's books.

    python bench/lean_server.py --port 8105
    curl -s localhost:8105/predict -d '{"instances": [[0.0, ...64 floats]]}'

Why: ``bench/run.py --servers bare,lean,frugal`` splits frugal's CPU per request over bare
uvicorn (issue 17's ratio) into what serving this model needs at all (here: bare -> lean) and
what frugal adds on top (lean -> frugal: admission, deadlines, routing, cache lookup, the
ledger row, metrics, cost headers, priced batches). It runs under the uvicorn options ``frugal
serve`` uses (as bench/bare_server.py does), one process, and per request: reads the body,
parses it with orjson, checks one row of 64 numbers, queues it for a micro-batcher (released at
64 items or 2 ms after the first, as bench/configs/w1.yaml batches), which runs
``predict_proba`` on a worker thread (the event loop never runs the model), then answers the
label and confidence as JSON with the same response headers frugal sends. No auth, ledger,
metrics, deadlines or error bodies beyond a bare 400: it is a floor, not a server to run.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from bare_server import lifespan, serve  # noqa: E402

Message = MutableMapping[str, Any]
MAX_BATCH = 64
MAX_WAIT_S = 0.002
HEALTH = b'{"status":"ok"}'
BAD = b'{"error":"expected {\\"instances\\": [[64 numbers]]}"}'


class MicroBatcher:
    """Rows in, one future each; a batch runs on one worker thread, at most one at a time."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.classes = estimator.classes_
        self.pool = ThreadPoolExecutor(1)
        self.rows: list[np.ndarray] = []
        self.futures: list[asyncio.Future[tuple[Any, float]]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.running = False

    def submit(self, row: np.ndarray) -> asyncio.Future[tuple[Any, float]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, float]] = loop.create_future()
        self.rows.append(row)
        self.futures.append(future)
        if len(self.rows) >= MAX_BATCH:
            self.release()
        elif self.timer is None:
            self.timer = loop.call_later(MAX_WAIT_S, self.release)
        return future

    def release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.running or not self.rows:
            return  # the running batch releases the next when it ends
        rows, futures = self.rows[:MAX_BATCH], self.futures[:MAX_BATCH]
        del self.rows[:MAX_BATCH], self.futures[:MAX_BATCH]
        self.running = True
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self.pool, self.run, rows)
        done.add_done_callback(lambda d: self.finish(d, futures))

    def run(self, rows: list[np.ndarray]) -> list[tuple[Any, float]]:
        proba = self.estimator.predict_proba(np.stack(rows))
        best = proba.argmax(axis=1)
        labels = self.classes[best].tolist()
        return list(zip(labels, proba[np.arange(len(rows)), best].tolist(), strict=True))

    def finish(self, done: asyncio.Future[list[tuple[Any, float]]], futures: list[Any]) -> None:
        self.running = False
        for future, answer in zip(futures, done.result(), strict=True):
            if not future.done():
                future.set_result(answer)
        if self.rows:
            self.release()


def reply_headers(body: bytes, status: int) -> list[tuple[bytes, bytes]]:
    """frugal's response headers (values are placeholders of the same size)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 200:
        headers += [
            (b"x-frugal-cache", b"bypass"),
            (b"x-request-id", b"3ecfe78300000001"),
            (b"x-frugal-model", b"digits:1"),
            (b"x-frugal-cost-usd", b"7.630626e-08"),
        ]
    return headers


def make_app(batcher: MicroBatcher) -> Callable[..., Awaitable[None]]:
    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = 200, HEALTH
        if scope["method"] == "POST":
            try:
                instances = orjson.loads(b"".join(chunks))["instances"]
                row = np.asarray(instances[0], dtype=np.float32)
                if len(instances) != 1 or row.shape != (64,):
                    raise ValueError
            except (ValueError, KeyError, IndexError, TypeError):
                status, body = 400, BAD
            else:
                label, confidence = await batcher.submit(row)
                body = orjson.dumps({"predictions": [label], "confidences": [confidence]})
        headers = reply_headers(body, status)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str] | None = None) -> int:
    def build() -> Callable[..., Awaitable[None]]:
        import models

        return make_app(MicroBatcher(models.load_w1().estimator))

    return serve(build, __doc__ or "", 8105, argv)


if __name__ == "__main__":
    raise SystemExit(main())
