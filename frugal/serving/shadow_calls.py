"""A copy of some items sent to a model after the answer went out, and booked as shadow spend:
what shadow traffic (engine.py) and the drift check's shadow check (drift_check.py) share.

Its ledger row has no key: the operator chose to send the copy, the caller's budget does not pay.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from frugal.errors import FrugalError
from frugal.serving.errors import status_of
from frugal.serving.recorder import Finished, Recorder
from frugal.types import Item, ItemOutcome

log = logging.getLogger("frugal.serving")

CallModel = Callable[[str, Sequence[Item], float], Awaitable[list[ItemOutcome]]]


async def shadow_outcomes(
    call: CallModel, model: str, items: Sequence[Item], deadline: float, what: str
) -> list[ItemOutcome] | None:
    """The model's outcomes on the copy; a refusal (a full queue, a drain) fails each item,
    and an unexpected error is logged and gives None (nothing to compare or book)."""
    try:
        return await call(model, items, deadline)
    except FrugalError as error:
        return [ItemOutcome(None, error, 0.0, None, model) for _ in items]
    except Exception:
        log.exception("%s: %s failed unexpectedly", what, model)
        return None


def book_shadow(
    recorder: Recorder, endpoint: str, model: str, request_id: str, received: float,
    outcomes: Sequence[ItemOutcome],
) -> None:  # fmt: skip
    """The copy's ledger row: shadow spend, with the status of its first failure if any."""
    failed = next((o.error for o in outcomes if o.error is not None), None)
    status = 200 if failed is None else status_of(failed)
    recorder.finish(Finished(endpoint, model, request_id, received, status, outcomes=outcomes,
                             shadow=True))  # fmt: skip


__all__ = ["CallModel", "book_shadow", "shadow_outcomes"]
