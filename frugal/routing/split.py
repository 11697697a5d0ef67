"""Splits: several versions of a model answer one endpoint, each a share of the requests.

A request goes to one version, chosen by weight: at random, or, with ``sticky``, by the caller's
user key so a user keeps seeing the same version. Sticky choice is weighted rendezvous hashing
(each version scores ``-ln(u) / weight`` with ``u`` a hash of user and version; the lowest score
wins): the shares follow the weights, and when a weight changes only the users who must move do
(raising a canary's weight moves users to the canary, never between the other versions).
Weights change at run time (admin API, rollback) through ``set_weights``.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping

from frugal.errors import DeadlineExceeded, FrugalError, ModelFailed, Overloaded, UpstreamFailed
from frugal.routing.base import CallModel, RoutedResult, RouteRequest
from frugal.types import ItemOutcome

# Errors a version is to blame for (the caller's own bad input is not the version's fault).
SERVER_FAULTS = (ModelFailed, DeadlineExceeded, Overloaded, UpstreamFailed)
# (version, failed, latency_s): what a canary watch learns from each request.
SplitObserver = Callable[[str, bool, float], None]


def check_weights(weights: Mapping[str, float], versions: tuple[str, ...]) -> dict[str, float]:
    """New weights for exactly these versions, each >= 0, at least one > 0; else ValueError."""
    unknown = sorted(set(weights) - set(versions))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a version of this split ({', '.join(versions)})")
    given = {v: float(weights.get(v, 0.0)) for v in versions}
    if any(not math.isfinite(w) or w < 0 for w in given.values()):
        raise ValueError("weights are finite numbers >= 0")
    if not any(w > 0 for w in given.values()):
        raise ValueError("at least one version needs a weight above 0")
    if not math.isfinite(sum(given.values())):  # 1e308 + 1e308: every request to the last
        raise ValueError("weights must add up to a finite number; they are relative shares")
    return given


def _unit_hash(user: str, version: str) -> float:
    digest = hashlib.blake2b(f"{user}\0{version}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2.0**64  # in (0, 1), never 0


class SplitRouter:
    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        sticky: bool = False,
        observe: SplitObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.models: tuple[str, ...] = tuple(weights)
        self.sticky = sticky
        self.weights = check_weights(weights, self.models)
        self._observe = observe
        self._rng = rng or random.Random()

    def set_weights(self, weights: Mapping[str, float]) -> dict[str, float]:
        """Replace the weights (a version left out gets 0); returns the weights before."""
        before = self.weights
        self.weights = check_weights(weights, self.models)
        return before

    @property
    def baseline(self) -> str:
        """The version with the largest share: the one canaries are compared with."""
        return max(self.models, key=lambda v: self.weights[v])

    def choose(self, user: str | None) -> str:
        live = [(v, w) for v, w in self.weights.items() if w > 0]
        if self.sticky and user:
            return min(live, key=lambda vw: -math.log(_unit_hash(user, vw[0])) / vw[1])[0]
        point = self._rng.random() * sum(w for _, w in live)
        for version, weight in live:
            point -= weight
            if point < 0:
                return version
        return live[-1][0]

    async def route(self, request: RouteRequest, call: CallModel) -> RoutedResult:
        version = self.choose(request.user)
        started = time.monotonic()
        try:
            outcomes = await call(version, request.items, request.deadline)
        except FrugalError as error:  # refused before it ran (queue full, deadline)
            self._record(version, isinstance(error, SERVER_FAULTS), started)
            raise
        self._record(version, _failed(outcomes), started)
        return RoutedResult(outcomes)

    def _record(self, version: str, failed: bool, started: float) -> None:
        if self._observe is not None:
            self._observe(version, failed, time.monotonic() - started)


def _failed(outcomes: list[ItemOutcome]) -> bool:
    """A request counts as failed when the server is at fault for any of its items."""
    return any(isinstance(o.error, SERVER_FAULTS) for o in outcomes)


__all__ = ["SplitObserver", "SplitRouter", "check_weights"]
