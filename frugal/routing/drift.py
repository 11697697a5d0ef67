"""The drift check: a cascade's accuracy drop watched while it serves, with calibrate's bound.

Thresholds chosen on yesterday's items hold for items like them; when traffic drifts, a cheap
tier keeps answering with the same confidence and more of its answers are wrong. Two kinds of
evidence judge served items against the last tier alone:

- **Labels fed back** (``POST /v1/endpoints/{name}/feedback``): an item an earlier tier
  answered *harms* when it was wrong (counted as if the last tier would have been right: an
  upper bound on the harm, since the last tier's answer is unknown); an item the last tier
  answered is the last tier's own answer: no harm.
- **The shadow check** (``shadow_share``): a sampled share of the items is also judged by the
  last tier; an earlier tier's answer that disagrees with it counts as harm (an upper bound
  again: of two different answers at most one is right). The copies' cost is booked as shadow
  spend, apart from what callers pay.

An item is judged once, by whichever comes first. Over the last ``window`` judged items, the
drop's upper bound at ``confidence`` (``confidence.drop_bound``, the one calibrate uses) is
compared with ``max_drop``, once there are enough items for a sound cascade to pass at all
(``DriftConfig.items_to_vouch``); past it, the monitor tightens every gate one ``step`` toward
strict (never past ``limit``) and starts a new window, or only alerts, by config. So the
cascade stays vouched for, at the confidence asked, over the last ``window`` items: a larger
window vouches for a looser threshold, as a larger calibration set does. Every verdict goes to
``on_event``; the engine logs it, counts it and writes it to the audit log.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frugal.config import DriftConfig
from frugal.errors import InvalidInput, NotFound
from frugal.routing.cascade import CascadeRouter
from frugal.routing.confidence import drop_bound
from frugal.routing.labels import same_label
from frugal.routing.shadow import agree
from frugal.types import ItemOutcome


@dataclass(slots=True)
class _Served:
    """One served item awaiting its judgment."""

    tier: int  # the cascade tier that answered it; -1: it failed, nothing to judge
    value: Any
    judged: bool = False


@dataclass(slots=True)
class _Request:
    key: str  # the API key that made it: only that key may label it
    expires: float
    generation: int  # the thresholds it was served under
    items: list[_Served]


@dataclass(frozen=True, slots=True)
class ShadowTicket:
    """Items the shadow check sends to the last tier, and what to judge when it answers."""

    items: list[_Served]
    indices: list[int]  # into items
    generation: int


@dataclass(frozen=True, slots=True)
class DriftEvent:
    endpoint: str
    action: str  # "tighten", "alert" or "at_limit" (tighten asked, every gate at its limit)
    bound: float
    judged: int
    harmed: int
    helped: int
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)  # model: old, new

    def detail(self) -> dict[str, Any]:
        return {
            "bound": round(self.bound, 6), "judged": self.judged,
            "harmed": self.harmed, "helped": self.helped,
            "thresholds": {m: {"old": o, "new": n} for m, (o, n) in self.thresholds.items()},
        }  # fmt: skip


class DriftMonitor:
    def __init__(
        self,
        endpoint: str,
        config: DriftConfig,
        routers: Sequence[CascadeRouter],
        on_event: Callable[[DriftEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.routers = list(routers)  # the base cascade first, then any a rule starts
        self.tiers = self.routers[0].models
        self.last = self.tiers[-1]
        self._on_event = on_event
        self._clock = clock
        self._rng = rng or random.Random()
        self._pending: OrderedDict[str, _Request] = OrderedDict()
        self._window: deque[tuple[int, int]] = deque()
        self.harmed = self.helped = 0
        self.generation = 0
        self.alerting = False

    # ---- what was served ---------------------------------------------------------------------

    def served(
        self, request_id: str, key: str, outcomes: Sequence[ItemOutcome]
    ) -> ShadowTicket | None:
        """Remember a request's answers for their labels; returns what the shadow check should
        send to the last tier (a sample of the items an earlier tier answered), if anything."""
        items = [
            _Served(
                self.tiers.index(o.model) if answered(o, self.tiers) else -1,
                o.prediction.value if o.prediction is not None else None,
            )
            for o in outcomes
        ]
        to_shadow: list[int] = []
        if self.config.shadow_share > 0:
            for i, item in enumerate(items):
                if item.tier < 0 or self._rng.random() >= self.config.shadow_share:
                    continue
                if item.tier == len(self.tiers) - 1:
                    self._judge(item, harm=0, helped=0)  # the last tier's own answer
                else:
                    to_shadow.append(i)
            self._verdict()
        if request_id:
            self._forget_expired()
            self._pending[request_id] = _Request(
                key, self._clock() + self.config.feedback_ttl_s, self.generation, items
            )
            self._pending.move_to_end(request_id)
            while len(self._pending) > self.config.max_pending:
                self._pending.popitem(last=False)
        return ShadowTicket(items, to_shadow, self.generation) if to_shadow else None

    def shadowed(self, ticket: ShadowTicket, last: Sequence[ItemOutcome]) -> int:
        """The last tier's answers on the sampled items: each judged by agreement. Returns
        how many disagreed."""
        if ticket.generation != self.generation:
            return 0  # served under thresholds since tightened: no evidence about today's
        disagreed = 0
        for i, outcome in zip(ticket.indices, last, strict=True):
            item = ticket.items[i]
            if outcome.prediction is None or item.judged:
                continue  # the last tier failed on it: nothing to compare
            harm = int(not agree(item.value, outcome.prediction.value))
            disagreed += harm
            self._judge(item, harm=harm, helped=0)
        self._verdict()
        return disagreed

    # ---- labels ------------------------------------------------------------------------------

    def feedback(self, request_id: str, key: str, labels: Sequence[object]) -> dict[str, Any]:
        """Judge a served request's items by their true labels."""
        self._forget_expired()
        request = self._pending.get(request_id)
        if request is None or request.key != key:
            raise NotFound(
                f"no answer of endpoint {self.endpoint!r} with request id {request_id!r} awaits "
                "labels", field="request_id",
                hint=f"labels are taken for {self.config.feedback_ttl_s:g} s after the answer, "
                "from the key that made the request",
            )  # fmt: skip
        if len(labels) != len(request.items):
            raise InvalidInput(
                f"{len(labels)} labels for a request of {len(request.items)} items",
                field="labels",
            )
        del self._pending[request_id]
        judged = 0
        if request.generation == self.generation:
            for item, label in zip(request.items, labels, strict=True):
                if item.tier < 0 or item.judged or label is None:
                    continue
                last = item.tier == len(self.tiers) - 1
                self._judge(item, harm=int(not last and not same_label(item.value, label)),
                            helped=0)  # fmt: skip
                judged += 1
            self._verdict()
        return {"judged": judged, **self.state()}

    # ---- the verdict -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        n = len(self._window)
        return {
            "window": n, "harmed": self.harmed, "helped": self.helped,
            "bound": self.bound() if n else None, "max_drop": self.config.max_drop,
            "confidence": self.config.confidence, "thresholds": self.thresholds(),
        }  # fmt: skip

    def bound(self) -> float:
        n = len(self._window)
        return drop_bound(self.harmed, self.helped, n, self.config.confidence) if n else 0.0

    def thresholds(self) -> dict[str, float]:
        gates = self.routers[0].tiers[:-1]
        return {model: gate.threshold for model, gate in gates if gate is not None}

    def _judge(self, item: _Served, *, harm: int, helped: int) -> None:
        item.judged = True
        self._window.append((harm, helped))
        self.harmed += harm
        self.helped += helped
        if len(self._window) > self.config.window:
            old_harm, old_help = self._window.popleft()
            self.harmed -= old_harm
            self.helped -= old_help

    def _verdict(self) -> None:
        n = len(self._window)
        if n < max(self.config.min_items, self.config.items_to_vouch):
            return
        bound = self.bound()
        if bound <= self.config.max_drop:
            self.alerting = False
            return
        if self.config.action == "alert":
            if not self.alerting:  # once per crossing, not once per item
                self.alerting = True
                self._emit("alert", bound, {})
            return
        moved = self._tighten()
        self._emit("tighten" if moved else "at_limit", bound, moved)
        self._window.clear()  # the new thresholds start from no evidence
        self.harmed = self.helped = 0
        self.generation += 1

    def _tighten(self) -> dict[str, tuple[float, float]]:
        moved: dict[str, tuple[float, float]] = {}
        step, limit = self.config.step, self.config.limit
        for router in self.routers:
            for model, gate in router.tiers[:-1]:
                if gate is None:
                    continue
                up = gate.op in (">=", ">")
                new = gate.threshold + step if up else gate.threshold - step
                if limit is not None:
                    new = min(new, limit) if up else max(new, limit)
                new = round(new, 12)
                if new != gate.threshold:
                    router.replace_gate(model, gate.with_threshold(new))
                    moved.setdefault(model, (gate.threshold, new))
        return moved

    def _emit(self, action: str, bound: float, moved: dict[str, tuple[float, float]]) -> None:
        self._on_event(DriftEvent(self.endpoint, action, bound, len(self._window), self.harmed,
                                  self.helped, moved))  # fmt: skip

    def _forget_expired(self) -> None:
        now = self._clock()
        while self._pending:
            request_id, request = next(iter(self._pending.items()))
            if request.expires > now:
                break
            del self._pending[request_id]


def answered(outcome: ItemOutcome, tiers: Sequence[str]) -> bool:
    return outcome.error is None and outcome.prediction is not None and outcome.model in tiers


__all__ = ["DriftEvent", "DriftMonitor", "ShadowTicket"]
