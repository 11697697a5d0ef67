"""The cache stage of an endpoint: answer what is cached, compute each missing item once.

Item by item: a request of 5 items with 3 cached sends 2 to the route. Single-flight: an item
that another request is already computing waits for that answer instead of calling the model
again, so N identical concurrent requests make 1 model call. Only answers are stored, never
errors. A hit costs nothing here and records as saved the running mean cost of an item of the
model version that computed it (DESIGN.md's cost model).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from frugal.cache.keys import item_key
from frugal.cache.semantic import SemanticIndex
from frugal.cache.store import CacheEntry, CacheStore
from frugal.config import CacheConfig
from frugal.errors import FrugalError, ModelFailed
from frugal.types import Item, ItemOutcome, Prediction

log = logging.getLogger("frugal.cache")
Compute = Callable[[list[Item]], Awaitable[list[ItemOutcome]]]
_Flight = asyncio.Future[ItemOutcome]


@dataclass(frozen=True, slots=True)
class CacheResult:
    """Outcomes in the request's order (each names who answered it), and what the cache did."""

    outcomes: list[ItemOutcome]
    hits: int  # items answered without a model call of their own (stored, or shared)
    saved_usd: float
    label: str  # hit | shared | miss | partial


class CacheStage:
    def __init__(
        self,
        endpoint: str,
        config: CacheConfig,
        store: CacheStore,
        models: Sequence[str],
        *,
        mean_item_cost: Callable[[str], float],
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        semantic: SemanticIndex | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.store = store
        self.models = tuple(models)
        self._mean_item_cost = mean_item_cost
        self._flights: dict[bytes, _Flight] = {}
        self._clock = clock
        self._rand = rand
        self.semantic = semantic
        self.semantic_hits = 0
        self.following = 0  # items now waiting for another request's computation
        self.hits = self.misses = self.refreshed = 0  # since start, for /admin/cache/stats
        self.saved_usd = 0.0
        # The TTL of entries stored from now on: the config's, until the policy controller
        # sets another (entries already stored keep theirs).
        self.ttl_s = config.ttl_s
        # Hits answered from the store, and their summed age (now - computed): the staleness
        # of what the cache serves, read by the policy controller.
        self.stored_hits = 0
        self.stored_hit_age_s = 0.0

    @property
    def computing(self) -> int:
        """Distinct items being computed for this endpoint right now."""
        return len(self._flights)

    def scope_of(self, user: str | None, session: str | None) -> str | None:
        """The key scope of a request, or None when its scope is unknown (then: no caching,
        so a scoped answer can never reach another user or session)."""
        if self.config.scope == "global":
            return "global"
        who = user if self.config.scope == "user" else session
        return f"{self.config.scope}:{who}" if who else None

    async def serve(self, items: Sequence[Item], scope: str, compute: Compute) -> CacheResult:
        n = len(items)
        keys = [
            item_key(endpoint=self.endpoint, models=self.models, item=item, scope=scope)
            for item in items
        ]
        outcomes: list[ItemOutcome | None] = [None] * n
        owned: dict[bytes, list[int]] = {}  # keys this request computes -> its items with that key
        following: dict[int, _Flight] = {}  # items another request is computing
        hits = 0
        shared = 0  # of the hits: items that joined another request's computation
        saved = 0.0
        loop = asyncio.get_running_loop()
        try:
            for i, key in enumerate(keys):
                if key in owned:
                    owned[key].append(i)
                    continue
                if key in self._flights:
                    following[i] = self._flights[key]
                    continue
                entry = await self.store.get(key)
                if entry is not None and self._refresh_early(entry):
                    self.refreshed += 1
                    entry = None
                if entry is None and self.semantic is not None and isinstance(items[i], str):
                    entry = await self._nearest(items[i])
                if entry is not None:
                    self.stored_hits += 1
                    self.stored_hit_age_s += max(0.0, self._clock() - entry.created)
                    outcomes[i] = _hit(entry.value, entry.confidence, entry.model)
                    hits += 1
                    saved += self._mean_item_cost(entry.model)
                elif key in self._flights:  # started while the store answered
                    following[i] = self._flights[key]
                else:
                    owned[key] = [i]
                    self._flights[key] = loop.create_future()
            if owned:
                duplicates = await self._compute(items, owned, outcomes, compute)
                hits += len(duplicates)
                saved += sum(self._mean_item_cost(model) for model in duplicates)
        except BaseException as exc:  # never leave a registered flight unresolved: followers hang
            error = exc if isinstance(exc, FrugalError) else ModelFailed(f"{exc!r}")
            for key in owned:
                self._land(key, ItemOutcome(None, error, 0.0, None, "-"))
            raise
        for i, flight in following.items():
            self.following += 1
            try:
                outcome = await flight
            finally:
                self.following -= 1
            if outcome.error is not None or outcome.prediction is None:
                outcomes[i] = outcome
            else:
                outcomes[i] = _hit(outcome.prediction.value, outcome.prediction.confidence,
                                   outcome.model)  # fmt: skip
                hits += 1
                shared += 1
                saved += self._mean_item_cost(outcome.model)
        done = [o for o in outcomes if o is not None]
        assert len(done) == n
        # "shared": no model call of its own, but it waited for another request's (single-flight).
        label = "miss" if hits == 0 else "partial" if hits < n else "shared" if shared else "hit"
        self.hits += hits
        self.misses += n - hits
        self.saved_usd += saved
        if self.config.log_sample and self._rand() < self.config.log_sample:
            log.info(
                "cache %s: endpoint=%s scope=%s items=%d hits=%d saved_usd=%.3g",
                label, self.endpoint, self.config.scope, n, hits, saved,
            )  # fmt: skip
        return CacheResult(done, hits, saved, label)

    async def _nearest(self, text: str) -> CacheEntry | None:
        """The stored answer of a text that means the same (embedding runs in a thread)."""
        assert self.semantic is not None
        key, _ = await asyncio.to_thread(self.semantic.nearest, text)
        if key is None:
            return None
        entry = await self.store.get(key)
        if entry is None:  # expired or evicted from the store: forget it here too
            await asyncio.to_thread(self.semantic.remove, key)
            return None
        self.semantic_hits += 1
        return entry

    def _refresh_early(self, entry: CacheEntry) -> bool:
        """XFetch (Vattani et al., VLDB 2015): recompute before expiry with a probability that
        grows as expiry nears and with how long the answer took to compute, so one request
        refreshes a hot entry instead of all of them missing together when it expires."""
        early = self.config.early_expiry
        if early is None or not early.enabled or entry.compute_s <= 0:
            return False
        expires = entry.created + self.ttl_s
        gap = -entry.compute_s * early.beta * math.log(1.0 - self._rand())  # >= 0
        return self._clock() + gap >= expires

    async def _compute(
        self,
        items: Sequence[Item],
        owned: dict[bytes, list[int]],
        outcomes: list[ItemOutcome | None],
        compute: Compute,
    ) -> list[str]:
        """Computes one item per owned key; returns the model of each repeat within this request:
        repeats are answered as hits (their cost is the first one's, counted once)."""
        duplicates: list[str] = []
        try:
            computed = await compute([items[idx[0]] for idx in owned.values()])
        except BaseException as exc:  # followers get the same failure, never a hang
            error = exc if isinstance(exc, FrugalError) else ModelFailed(f"{exc!r}")
            for key in owned:
                self._land(key, ItemOutcome(None, error, 0.0, None, "-"))
            raise
        for (key, idx), outcome in zip(owned.items(), computed, strict=True):
            outcomes[idx[0]] = outcome
            ok = outcome.error is None and outcome.prediction is not None
            for i in idx[1:]:  # the same item twice in one request is computed once
                if ok and outcome.prediction is not None:
                    outcomes[i] = _hit(outcome.prediction.value, outcome.prediction.confidence,
                                       outcome.model)  # fmt: skip
                    duplicates.append(outcome.model)
                else:
                    outcomes[i] = outcome
            self._land(key, outcome)
            if ok and outcome.prediction is not None:
                entry = CacheEntry(
                    value=outcome.prediction.value,
                    confidence=outcome.prediction.confidence,
                    model=outcome.model,
                    cost_usd=outcome.cost_usd,
                    created=self._clock(),
                    endpoint=self.endpoint,
                    compute_s=outcome.batch.busy_s if outcome.batch is not None else 0.0,
                )
                await self.store.put(key, entry, self.ttl_s)
                text = items[idx[0]]
                if self.semantic is not None and isinstance(text, str):
                    await asyncio.to_thread(self.semantic.add, text, key)
        return duplicates

    def _land(self, key: bytes, outcome: ItemOutcome) -> None:
        flight = self._flights.pop(key, None)
        if flight is not None and not flight.done():
            flight.set_result(outcome)


def _hit(value: object, confidence: float | None, model: str) -> ItemOutcome:
    return ItemOutcome(Prediction(value, confidence), None, 0.0, None, model)


__all__ = ["CacheResult", "CacheStage", "Compute"]
