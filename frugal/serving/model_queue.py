"""What the engine needs of a model version's queue: the local ``Batcher``, or a stand-in
whose model runs elsewhere (scale/'s Ray Serve deployment sends each call to a replica that
runs the same ``Batcher``). The single-process path is unchanged: a ``Batcher`` is one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from frugal.errors import FrugalError
from frugal.types import Item, ItemOutcome


class Waiting(Protocol):
    """One request's items, submitted: their outcomes in order, errors included."""

    async def wait(self) -> list[ItemOutcome]: ...


class ModelQueue(Protocol):
    """Called by the engine on the event loop; ``submit`` raises ``Overloaded`` (nothing
    queued) or returns what to await."""

    refused: dict[str, int]  # submits refused, by reason: frugal_queue_refused_total

    @property
    def queue_depth(self) -> int: ...

    @property
    def estimated_wait_s(self) -> float: ...

    @property
    def batch_cost(self) -> tuple[float, float] | None: ...

    def submit(self, items: Sequence[Item], deadline: float, rank: int = 0) -> Waiting: ...

    # rank: the caller's tier, 0 highest (server.priority; serving/priority.py)

    def abort_queued(self, error: FrugalError) -> int: ...

    async def drain(self) -> None: ...


__all__ = ["ModelQueue", "Waiting"]
