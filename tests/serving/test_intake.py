"""A body that already arrived is read at once; one still arriving keeps its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from frugal.errors import PayloadTooLarge, RequestTimeout
from frugal.serving.intake import ClientGone, Intake

Message = MutableMapping[str, Any]


class Cycle:
    """Shaped as uvicorn's RequestResponseCycle: ``receive`` waits on ``message_event``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.message_event = asyncio.Event()
        if chunks:
            self.message_event.set()

    async def receive(self) -> Message:
        await self.message_event.wait()
        body = self.chunks.pop(0)
        if not self.chunks:
            self.message_event.clear()
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}


async def test_a_body_that_arrived_is_read_whole() -> None:
    """The whole body, there before the read began, comes back as sent and nothing waits."""
    intake = Intake(body_timeout_s=5.0)
    assert await intake.read(Cycle([b'{"instances": [1]}']).receive, "a", 1000) == (
        b'{"instances": [1]}'
    )
    assert intake.waiting == 0


async def test_a_body_whose_rest_never_comes_still_times_out() -> None:
    """A first chunk that arrived does not lift the deadline from the chunks still due."""
    cycle = Cycle([b'{"instan', b'ces": [1]}'])
    delivered: list[bytes] = []

    async def receive() -> Message:
        if delivered:  # after the first chunk, the client goes quiet
            await asyncio.Event().wait()
        message = await cycle.receive()
        delivered.append(message["body"])
        return message

    intake = Intake(body_timeout_s=0.05)
    with pytest.raises(RequestTimeout):
        await intake.read(receive, "a", 1000)


async def test_an_arrived_body_over_the_limit_is_refused() -> None:
    """The size limit holds on the fast path."""
    with pytest.raises(PayloadTooLarge):
        await Intake().read(Cycle([b"x" * 11]).receive, "a", 10)


async def test_an_arrived_disconnect_is_client_gone() -> None:
    """A disconnect already waiting ends the read as ClientGone."""

    class Gone(Cycle):
        async def receive(self) -> Message:
            return {"type": "http.disconnect"}

    with pytest.raises(ClientGone):
        await Intake().read(Gone([b"x"]).receive, "a", 10)
