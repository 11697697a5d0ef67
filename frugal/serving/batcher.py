"""The one place that turns many requests into one ``predict_batch`` call, and measures it.

Smart queueing: an item that finds its model idle runs at once with whatever else waits (at the
end of the loop's pass, so the requests read in that pass share its batch); while the model is
busy, items gather and go together when a worker frees up (``drain``, or ``full`` when
``max_batch_size`` were waiting). With several workers, a free worker next to a busy one
waits up to ``max_wait_ms`` for company (``max_wait``). So batches grow with load on their own and
a lone request never waits for company, unless ``linger_ms`` is set: then an item that finds
every worker idle waits up to that long (``linger``) for others to share its batch. That pays
for a model whose per-call cost is high and whose arrivals are sparse (a cascade's large tier
sees only the escalated items, one at a time), at the price of that much latency.

Admission by expected wait: an item is refused at once (``Overloaded``: 503 + Retry-After,
before any work) when the work ahead of it, at the measured time of this version's batches
(``service_time.py``), would answer it after its deadline; a queue bounded only by
``max_queue`` would hold it until that deadline and then answer 504. An item that finds the
model idle is always admitted (it runs at once, and its batch keeps the measurement fresh).

Shape-aware: for a ``SizedModel`` the batch is a run of similar-sized waiting items around the
oldest one, as many as its measured cost of padding says pay (``sizing.py``); no item starves,
since the oldest always goes next.

Priority by caller tier (``server.priority``, off by default): the queue stays in arrival
order, and ``priority.py`` picks each batch (higher tiers first, starved items before all) and
counts only the items ahead of a new one's tier for its expected wait.

Event-driven: no task polls; submits, timers and finished batches call ``_dispatch``. Deadlines
share one timer per batcher, armed for the earliest deadline still queued: an item that finds the
model idle runs at once and costs no timer at all, and a queued one no timer of its own. The model
call runs in the slot pool (a thread per slot), bisecting a failing batch there so only the bad
items fail. Any error inside the loop's own code fails the items it holds instead of hanging them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from frugal.accounting import Pricer
from frugal.config import BatchingConfig
from frugal.errors import DeadlineExceeded, FrugalError, ModelFailed, Overloaded
from frugal.runtimes import Model, SizedModel, predict_isolated
from frugal.serving.priority import TierOrder, TierQueue
from frugal.serving.service_time import RecentLinearFit, ServiceTime
from frugal.serving.sizing import choose_window
from frugal.types import BatchStats, Item, ItemOutcome, Prediction

log = logging.getLogger("frugal.batcher")

# Why a submit was refused with Overloaded: frugal_queue_refused_total's reason label.
REFUSAL_REASONS = ("queue_full", "expected_wait", "draining")


@dataclass(slots=True, eq=False)
class _Pending:
    item: Item
    size: int
    enqueued: float  # monotonic
    deadline: float  # monotonic
    future: asyncio.Future[ItemOutcome] = field(repr=False)
    running: bool = False  # taken into a batch: past the point where a deadline can stop it
    rank: int = 0  # caller tier, 0 highest: read only with server.priority (priority.py)


@dataclass(slots=True)
class Submission:
    """The futures of one request's items; ``wait`` returns their outcomes in order."""

    futures: list[asyncio.Future[ItemOutcome]]

    async def wait(self) -> list[ItemOutcome]:
        if len(self.futures) == 1:
            return [await self.futures[0]]
        return list(await asyncio.gather(*self.futures))


class Batcher:
    """One queue per model version; see the module docstring for when batches go."""

    def __init__(
        self,
        model: Model,
        batching: BatchingConfig,
        *,
        slot_pool: Executor,
        pricer: Pricer,
        on_batch: Callable[[BatchStats], None] = lambda stats: None,
        tiers: TierOrder | None = None,
    ) -> None:
        self.model = model
        self.key = model.ref.key
        self.config = batching
        self._pool = slot_pool
        self._pricer = pricer
        self._on_batch = on_batch
        self._sized = isinstance(model, SizedModel)
        self._cost_fit = RecentLinearFit(decay=0.98)  # busy_s vs padded size, sized models
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None
        # An idle model's batch goes at the end of the loop's pass (``_gather``), not at once.
        self._gather: asyncio.Handle | None = None
        self._timer_due = 0.0  # monotonic time the timer wakes at
        self._deadline_timer: asyncio.TimerHandle | None = None  # the earliest queued deadline
        self._deadline_due = math.inf  # monotonic time it wakes at
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_rate = 0.0  # items/s, moving average, for Retry-After
        self._service = ServiceTime()  # wall seconds of a batch by its size: expected waits
        self._running: list[tuple[float, int]] = []  # (released, items) of batches in flight
        self._parallel = max(1, min(batching.workers, pricer.workers))  # batches at once
        self.refused = dict.fromkeys(REFUSAL_REASONS, 0)  # submits refused, by reason
        self.accepting = True
        self.tiers = TierQueue(tiers) if tiers is not None else None  # None: FIFO

    # ---- what requests call -------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def set_max_wait_ms(self, max_wait_ms: float) -> None:
        """The policy controller's knob: later waits use it (a timer already armed stands)."""
        if not max_wait_ms > 0:
            raise ValueError(f"max_wait_ms must be > 0, got {max_wait_ms}")
        self.config = self.config.model_copy(update={"max_wait_ms": max_wait_ms})

    @property
    def batch_cost(self) -> tuple[float, float] | None:
        """(overhead_s, per_unit_s) fitted on recent batches of a sized model, once known."""
        return self._cost_fit.estimate() if self._sized else None

    def submit(self, items: Sequence[Item], deadline: float, rank: int = 0) -> Submission:
        """Queue items of one request; each resolves to an ItemOutcome, errors included.

        Raises ``Overloaded`` (nothing queued, nothing spent) when the server is draining, the
        queue would pass ``max_queue``, or the items could not be answered by ``deadline``.
        ``rank``: the caller's tier (0 highest), used only with ``server.priority``.
        """
        if not self.accepting:
            self._count_refusal("draining", rank)
            raise Overloaded(f"model {self.key} is shutting down", retry_after_s=1.0)
        if len(self._queue) + len(items) > self.config.max_queue:
            self._count_refusal("queue_full", rank)
            raise Overloaded(
                f"model {self.key} has {len(self._queue)} items queued "
                f"(max_queue {self.config.max_queue})",
                retry_after_s=self.retry_after_s(),
                hint="retry after the Retry-After seconds, or raise batching.max_queue / workers",
            )
        now = time.monotonic()
        if self.config.admit_wait_factor and (self._queue or self._running):
            self._admit_by_wait(len(items), deadline, now, rank)
        loop = asyncio.get_running_loop()
        sizes = [self.model.item_size(i) for i in items] if self._sized else None  # type: ignore[attr-defined]
        pendings = [
            _Pending(item, sizes[i] if sizes else 1, now, deadline, loop.create_future(), rank=rank)
            for i, item in enumerate(items)
        ]
        self._queue.extend(pendings)
        self._idle.clear()
        self._dispatch()
        # Items still queued need waking at their deadline; ones already running never expire.
        if deadline < self._deadline_due and not all(p.running for p in pendings):
            self._arm_deadline(deadline)
        return Submission([p.future for p in pendings])

    def _admit_by_wait(self, items: int, deadline: float, now: float, rank: int) -> None:
        """Refuses ``items`` if the work ahead would answer them past ``deadline``.

        Only called with work ahead: an item that finds the model idle runs at once. With
        priority, only the items that go before its tier are ahead: lower tiers refused first.
        """
        queued = None if self.tiers is None else self.tiers.ahead(self._queue, rank, now)
        wait_s = self.expected_wait_s(items, now, queued)
        if wait_s is None:  # no batch has finished yet: max_queue alone bounds the queue
            return
        if self.tiers is not None:  # higher tiers arriving meanwhile pass a lower one
            wait_s *= self.tiers.stretch(rank)
        over_s = wait_s * self.config.admit_wait_factor - (deadline - now)
        if over_s <= 0:
            return
        self._count_refusal("expected_wait", rank)
        raise Overloaded(
            f"model {self.key} would answer in about {1000 * wait_s:.0f} ms with "
            f"{len(self._queue) if queued is None else queued} items queued ahead, past this "
            f"request's deadline in "
            f"{1000 * max(0.0, deadline - now):.0f} ms",
            retry_after_s=max(1.0, over_s),
            hint="retry after the Retry-After seconds, or add capacity (batching.workers, "
            "slots, replicas); a longer batching.timeout_ms admits more, answered later",
        )

    def _count_refusal(self, reason: str, rank: int) -> None:
        self.refused[reason] += 1
        if self.tiers is not None:
            self.tiers.count_refusal(rank, reason)

    def expected_wait_s(
        self, items: int, now: float | None = None, queued: int | None = None
    ) -> float | None:
        """Seconds until ``items`` submitted now would be answered (None before any batch ran).

        The running batches' rest, then the queue ahead of them in batches of
        ``max_batch_size``, shared by the workers, then their own batch (a full one when a
        batch's worth waits ahead: arrivals behind them fill it): O(workers). ``queued``: the
        waiting items that go before them (default: all, FIFO).
        """
        service = self._service
        if not service.known:
            return None
        if now is None:
            now = time.monotonic()
        limit = self.config.max_batch_size
        batch_s = service.batch_s
        running_s = longest_s = 0.0
        for released, size in self._running:  # once a request: comparisons, not max() calls
            ran_s = now - released
            left_s = batch_s(size) - ran_s
            if left_s > 0:
                running_s += left_s
            if ran_s > longest_s:
                longest_s = ran_s
        if queued is None:
            queued = len(self._queue)
        batches_ahead, in_last = divmod(queued + items - 1, limit)
        # A full batch takes no less than a running one has already run: before the fit has
        # seen a full batch (a burst after a quiet spell), that is the best bound it has.
        full_s = batch_s(limit)
        if longest_s > full_s:
            full_s = longest_s
        ahead_s = running_s + batches_ahead * full_s
        # Behind a full batch's worth of waiting items, later arrivals fill the last batch too.
        last_s = full_s if batches_ahead else batch_s(in_last + 1)
        return ahead_s / self._parallel + last_s

    @property
    def estimated_wait_s(self) -> float:
        """Seconds the queued items take at the recent drain rate (0 before any batch ran)."""
        if self._drain_rate <= 0:
            return 0.0
        return len(self._queue) / self._drain_rate

    def retry_after_s(self) -> float:
        """Seconds until the queue has drained, from the recent drain rate (at least 1)."""
        if self._drain_rate <= 0:
            return 1.0
        return max(1.0, len(self._queue) / self._drain_rate)

    async def drain(self) -> None:
        """Stop taking items and return once every queued item is answered."""
        self.accepting = False
        self._dispatch()
        await self._idle.wait()

    def abort_queued(self, error: FrugalError) -> int:
        """Shutdown's bound passed: what is still queued is answered ``error`` and never runs
        (each request records its row as usual); returns how many items that was."""
        count = sum(1 for p in self._queue if not p.future.done())
        self._fail_all(error)
        self._check_idle()
        return count

    # ---- when batches go ------------------------------------------------------------------

    def _dispatch(self, *, pass_ended: bool = False) -> None:
        """Release what may go now; ``pass_ended``: called by ``_gather`` at the end of a pass."""
        try:
            while self._queue and self._in_flight < self.config.workers:
                self._drop_done()
                if not self._queue:
                    break
                full = len(self._queue) >= self.config.max_batch_size
                if full or not self.accepting:
                    self._release("full" if full else "drain")
                elif self._in_flight == 0:
                    if self.config.linger_ms:  # off by default: no clock read on that path
                        linger_until = self._queue[0].enqueued + self.config.linger_ms / 1000
                        if time.monotonic() < linger_until:
                            self._arm_timer(linger_until)
                            break
                    if not pass_ended:
                        # Requests read in one pass of the loop share the batch: the first to
                        # find the model idle does not go alone, ahead of the rest of its pass.
                        if self._gather is None:
                            loop = asyncio.get_running_loop()
                            self._gather = loop.call_soon(self._on_gather)
                        break
                    self._release("drain")
                else:
                    self._arm_timer(self._queue[0].enqueued + self.config.max_wait_ms / 1000)
                    break
        except Exception:  # the loop must survive anything: fail what it held, keep serving
            log.exception("batcher %s: dispatch failed", self.key)
            self._fail_all(ModelFailed(f"model {self.key}: internal batching error"))
        self._check_idle()

    def _on_gather(self) -> None:
        self._gather = None
        self._dispatch(pass_ended=True)

    def _arm_timer(self, due: float) -> None:
        """Wake at ``due`` (monotonic) to send what waits; an earlier wake already set stands."""
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_due = due
        self._timer = loop.call_at(loop.time() + max(0.0, due - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._queue and self._in_flight < self.config.workers:
            self._drop_done()
            if self._queue:
                self._release("linger" if self._in_flight == 0 else "max_wait")
        self._dispatch()

    def _release(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._take_batch()
        now = time.monotonic()
        live = []
        for p in batch:
            if now >= p.deadline:
                self._answer_expired(p)
            else:
                live.append(p)
        if not live:
            return
        for p in live:
            p.running = True
        self._in_flight += 1
        running = (now, len(live))
        self._running.append(running)
        items = [p.item for p in live]
        started_at = time.time()
        # The pool's own future, handed back with one call_soon_threadsafe: run_in_executor's
        # asyncio future chained to it costs a future, two callbacks and one more loop pass.
        loop = asyncio.get_running_loop()
        future = self._pool.submit(_run_isolated, self.model, items)
        finish = functools.partial(
            self._finish, batch=live, reason=reason, started_at=started_at, released=now,
            running=running,
        )  # fmt: skip
        future.add_done_callback(functools.partial(_call_on, loop, finish))

    def _take_batch(self) -> list[_Pending]:
        limit = self.config.max_batch_size
        if self.tiers is not None:
            return self._take_by_tier(limit)
        if self._sized:
            queue = list(self._queue)
            chosen = choose_window([p.size for p in queue], limit, self._cost_fit.estimate())
            if len(chosen) < len(queue):
                keep = set(chosen)
                self._queue = deque(p for i, p in enumerate(queue) if i not in keep)
                return [queue[i] for i in chosen]
        if len(self._queue) <= limit:
            batch = list(self._queue)
            self._queue.clear()
            return batch
        return [self._queue.popleft() for _ in range(limit)]

    def _take_by_tier(self, limit: int) -> list[_Pending]:
        fit = self._cost_fit.estimate()
        window = (lambda sizes: choose_window(sizes, limit, fit)) if self._sized else None
        assert self.tiers is not None
        batch, rest = self.tiers.take(self._queue, limit, time.monotonic(), window)
        self._queue = deque(rest)
        return batch

    # ---- answering ----------------------------------------------------------------------

    def _finish(
        self,
        future: Future[tuple[list[Prediction | BaseException], float]],
        batch: list[_Pending],
        reason: str,
        started_at: float,
        released: float,
        running: tuple[float, int],
    ) -> None:
        self._in_flight -= 1
        self._running.remove(running)
        try:
            try:
                results, busy_s = future.result()
            except BaseException as exc:  # the pool itself failed (e.g. shut down): fail the batch
                results, busy_s = [exc] * len(batch), 0.0
            sizes = [p.size for p in batch]
            padded = max(sizes) * len(batch) if self._sized else None
            stats = BatchStats(
                model=self.key,
                size=len(batch),
                reason=reason,
                started_at=started_at,
                busy_s=busy_s,
                cost_per_item_usd=self._pricer.item_cost_usd(busy_s, len(batch)),
                queue_s=tuple(released - p.enqueued for p in batch),
                failed=sum(isinstance(r, BaseException) for r in results),
                padded_size=padded,
                padding_waste=(1 - sum(sizes) / padded) if padded else None,
            )
            if self.tiers is not None:
                self.tiers.observe_waits(batch, stats.queue_s)
            if padded is not None and not stats.failed:
                self._cost_fit.observe(padded, busy_s)
            if not stats.failed:  # a bisected batch's time says little about the next one
                self._service.observe(len(batch), time.monotonic() - released)
            if busy_s > 0:
                rate = len(batch) / busy_s
                self._drain_rate = (
                    rate if self._drain_rate == 0 else 0.8 * self._drain_rate + 0.2 * rate
                )
            for p, result, waited in zip(batch, results, stats.queue_s, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, BaseException):
                    error = ModelFailed(f"model {self.key} failed on this item: {result!r}")
                    p.future.set_result(ItemOutcome(None, error, waited, stats, self.key))
                else:
                    p.future.set_result(ItemOutcome(result, None, waited, stats, self.key))
            self._on_batch(stats)
        except Exception:
            log.exception("batcher %s: finishing a batch failed", self.key)
            for p in batch:
                if not p.future.done():
                    error = ModelFailed(f"model {self.key}: internal batching error")
                    p.future.set_result(ItemOutcome(None, error, 0.0, None, self.key))
        self._dispatch()

    def _arm_deadline(self, due: float) -> None:
        """Wake at ``due`` (monotonic; finite) to expire what is still queued by then."""
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        loop = asyncio.get_running_loop()
        self._deadline_due = due
        self._deadline_timer = loop.call_at(
            loop.time() + max(0.0, due - time.monotonic()), self._expire
        )

    def _expire(self) -> None:
        """The earliest queued deadline came: items whose deadline passed are answered and never
        run, and the timer is armed again for the earliest deadline still queued (none: off).

        Items already running finish (the compute is spent and priced); the caller decides.
        The loop's clock may wake a millisecond early: that counts as due, as a per-request
        timer's wake did.
        """
        self._deadline_timer = None
        self._deadline_due = math.inf
        due_by = time.monotonic() + 0.001
        later = math.inf
        expired = False
        for p in self._queue:
            if p.deadline <= due_by:
                self._answer_expired(p)
                expired = True
            elif p.deadline < later and not p.future.done():
                later = p.deadline
        if expired:
            self._drop_done()
        if math.isfinite(later):
            self._arm_deadline(later)
        self._check_idle()

    def _answer_expired(self, p: _Pending) -> None:
        if not p.future.done():
            error = DeadlineExceeded(
                f"deadline passed after {1000 * (time.monotonic() - p.enqueued):.0f} ms in the "
                f"queue of {self.key}; the item never reached the model",
                hint="raise batching.timeout_ms or x-frugal-deadline-ms, or add capacity",
            )
            p.future.set_result(
                ItemOutcome(None, error, time.monotonic() - p.enqueued, None, self.key)
            )

    def _drop_done(self) -> None:
        if any(p.future.done() for p in self._queue):
            self._queue = deque(p for p in self._queue if not p.future.done())

    def _fail_all(self, error: FrugalError) -> None:
        for p in self._queue:
            if not p.future.done():
                p.future.set_result(ItemOutcome(None, error, 0.0, None, self.key))
        self._queue.clear()

    def _check_idle(self) -> None:
        if not self._queue and self._in_flight == 0:
            self._idle.set()


def _call_on(loop: asyncio.AbstractEventLoop, finish: Callable[[Future[Any]], None],
             future: Future[Any]) -> None:  # fmt: skip
    """In the slot thread: ``finish(future)`` on the loop, unless the loop is gone (a batch that
    outlived its server: there is no one to answer)."""
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(finish, future)
        except RuntimeError:  # closed between the check and the call
            pass


def _run_isolated(
    model: Model, items: list[Item]
) -> tuple[list[Prediction | BaseException], float]:
    """Runs in a slot thread: the batch, bisected on failure so each bad item fails alone."""
    start = time.perf_counter()
    results = predict_isolated(model, items)
    return results, time.perf_counter() - start


__all__ = ["Batcher", "Submission"]
