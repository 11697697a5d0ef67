"""The floor: a raw ASGI app under uvicorn that reads the body and answers a constant JSON body.

    python bench/bare_server.py --port 8104
    curl -s localhost:8104/predict -d '{"instances": [[0.0]]}'

No framework, no model, no JSON parsing: what one request costs uvicorn itself, so that
``bench/run.py --servers bare,frugal`` can say how far above bare HTTP frugal's request path is
(issue 17: the goal is at most 3x this server's CPU per request, measured in the same run).

It runs with the uvicorn options ``frugal serve`` uses (``frugal.serving.server.uvicorn_options``
on ``bench/configs/w1.yaml``: uvloop, frugal's httptools protocol with its header deadline and
byte cap at their defaults, no access log, no server header, the same backlog), one process, log
level warning. ``POST`` to any path answers ``{"predictions": [0]}`` (one prediction, so run.py's
answer check passes for W1); ``GET /health`` answers ``{"status": "ok"}``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

Message = MutableMapping[str, Any]
PREDICTION = b'{"predictions":[0]}'
HEALTH = b'{"status":"ok"}'


def headers_for(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


PREDICTION_HEADERS = headers_for(PREDICTION)
HEALTH_HEADERS = headers_for(HEALTH)


async def lifespan(
    receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """ASGI's start-up and shutdown, with nothing to do at either (lean_server.py's too)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


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
    more = True
    while more:  # read the whole body, as every server in the comparison does
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        body, headers = HEALTH, HEALTH_HEADERS
    else:
        body, headers = PREDICTION, PREDICTION_HEADERS
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(
    build: Callable[[], Callable[..., Awaitable[None]]], description: str, port: int,
    argv: list[str] | None = None,
) -> int:  # fmt: skip
    """Parse ``--port/--host/--config`` and run the app ``build`` makes under the uvicorn
    options ``frugal serve`` would use for that config: one process, log level warning (this
    floor's, and lean_server.py's)."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--config", type=Path, default=BENCH / "configs" / "w1.yaml",
        help="the frugal.yaml whose server section sets uvicorn's options (default: W1's)",
    )  # fmt: skip
    args = p.parse_args(argv)

    import uvicorn

    from frugal.config import load_config
    from frugal.serving.server import uvicorn_options

    options = uvicorn_options(load_config(args.config), args.host, args.port)
    uvicorn.run(build(), **options, log_level="warning", workers=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    return serve(lambda: app, __doc__ or "", 8104, argv)


if __name__ == "__main__":
    raise SystemExit(main())
