"""The batcher with a real digits model: when batches go, what fails alone, and what it costs."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from frugal.accounting import Pricer
from frugal.config import BatchingConfig
from frugal.errors import DeadlineExceeded, ModelFailed, Overloaded
from frugal.runtimes.sklearn import SklearnModel
from frugal.serving.batcher import Batcher
from frugal.types import BatchStats, ModelRef, Prediction

PRICER = Pricer(price_usd_per_hour=3.6, slots=2)
FOREVER = math.inf


class GatedModel:
    """The real digits model behind a gate, so a test decides when the model is busy."""

    def __init__(self, inner: SklearnModel) -> None:
        self.ref = ModelRef("digits", "1")
        self.inner = inner
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls: list[int] = []

    def predict_batch(self, items: Sequence[Any]) -> Sequence[Prediction]:
        self.calls.append(len(items))
        self.started.set()
        self.gate.wait(10)
        return self.inner.predict_batch(items)

    async def wait_busy(self) -> None:
        await asyncio.to_thread(self.started.wait, 10)


class SizedDigits(GatedModel):
    """Gated digits whose items have a size (the number of non-zero pixels)."""

    def item_size(self, item: np.ndarray) -> int:
        return int(np.count_nonzero(item))


@pytest.fixture(scope="module")
def sklearn_model(digits_model_file: Path) -> SklearnModel:
    return SklearnModel(ModelRef("digits", "1"), joblib.load(digits_model_file))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def make(model: Any, pool: ThreadPoolExecutor, stats: list[BatchStats], **batching: Any) -> Batcher:
    return Batcher(
        model, BatchingConfig(**batching), slot_pool=pool, pricer=PRICER, on_batch=stats.append
    )


async def test_lone_item_runs_at_once(sklearn_model: SklearnModel, pool: Any, digits: Any) -> None:
    """An item that finds the model idle goes alone, without waiting for company."""
    x, y = digits
    stats: list[BatchStats] = []
    batcher = make(sklearn_model, pool, stats, max_batch_size=32, max_wait_ms=1000)
    start = time.monotonic()
    [outcome] = await batcher.submit([x[1300]], FOREVER).wait()
    assert time.monotonic() - start < 1.0  # not the 1000 ms max_wait: it did not wait
    assert outcome.prediction is not None and outcome.prediction.value == y[1300]
    assert [(s.size, s.reason) for s in stats] == [(1, "drain")]


async def test_requests_of_one_loop_pass_share_a_batch(
    sklearn_model: SklearnModel, pool: Any, digits: Any
) -> None:
    """Requests submitted in one pass of the event loop (a server reads several sockets in one
    poll) go as one batch: the first to find the model idle does not run alone ahead of them."""
    x, y = digits
    model = GatedModel(sklearn_model)
    model.gate.set()
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=32, max_wait_ms=1000)
    submissions = [batcher.submit([x[i]], FOREVER) for i in range(5)]  # no await in between
    assert batcher.queue_depth == 5  # none went yet: they go at the end of this pass
    outcomes = [o for s in submissions for o in await s.wait()]
    assert [o.prediction.value for o in outcomes if o.prediction] == list(y[:5])
    assert model.calls == [5]
    assert [(s.size, s.reason) for s in stats] == [(5, "drain")]
    # The next pass's lone request still goes without waiting for company (max_wait is 1 s).
    start = time.monotonic()
    await batcher.submit([x[5]], FOREVER).wait()
    assert time.monotonic() - start < 0.5
    assert model.calls == [5, 1]


async def test_items_gather_while_model_busy(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """While the model is busy items gather; they go together, capped at max_batch_size."""
    x, y = digits
    model = GatedModel(sklearn_model)
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=16)
    first = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    later = [batcher.submit([x[i]], FOREVER) for i in range(1, 41)]
    assert batcher.queue_depth == 40
    model.gate.set()
    outcomes = [o for s in [first, *later] for o in await s.wait()]
    assert [o.prediction.value for o in outcomes if o.prediction] == list(y[:41])
    assert model.calls == [1, 16, 16, 8]
    assert [s.reason for s in stats] == ["drain", "full", "full", "drain"]
    assert all(s.queue_s[0] >= 0 for s in stats)


async def test_poisoned_item_fails_alone(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """A batch with one item the model raises on answers every other item (bisection)."""
    x, y = digits
    model = GatedModel(sklearn_model)
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=64)
    warmup = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    rows = [x[i].copy() for i in range(1, 21)]
    rows[7][3] = np.inf  # scikit-learn refuses infinite input
    subs = [batcher.submit([row], FOREVER) for row in rows]
    model.gate.set()
    await warmup.wait()
    outcomes = [(await s.wait())[0] for s in subs]
    assert isinstance(outcomes[7].error, ModelFailed)
    assert outcomes[7].prediction is None
    good = [o for i, o in enumerate(outcomes) if i != 7]
    assert all(o.error is None for o in good)
    assert [o.prediction.value for o in good if o.prediction] == [
        y[i] for i in range(1, 21) if i != 8
    ]
    assert stats[-1].size == 20 and stats[-1].failed == 1


async def test_queue_overflow_is_overloaded(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """Past max_queue waiting items a submit is refused with a Retry-After estimate."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    batcher = make(model, pool, [], max_batch_size=4, max_queue=10)
    running = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    queued = batcher.submit(list(x[1:11]), FOREVER)
    with pytest.raises(Overloaded) as refused:
        batcher.submit([x[11]], FOREVER)
    assert refused.value.retry_after_s >= 1
    model.gate.set()
    assert all(o.error is None for o in [*await running.wait(), *await queued.wait()])


async def test_expired_items_never_reach_the_model(
    sklearn_model: Any, pool: Any, digits: Any
) -> None:
    """An item whose deadline passes in the queue is answered DeadlineExceeded and never runs."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    batcher = make(model, pool, [], max_batch_size=8)
    running = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    doomed = batcher.submit(list(x[1:4]), time.monotonic() + 0.05)
    outcomes = await doomed.wait()  # answered by the deadline timer while the model is busy
    assert all(isinstance(o.error, DeadlineExceeded) for o in outcomes)
    assert all(o.batch is None and o.cost_usd == 0 for o in outcomes)
    model.gate.set()
    await running.wait()
    survivor = await batcher.submit([x[5]], FOREVER).wait()
    assert survivor[0].error is None
    assert model.calls == [1, 1]  # the three expired items never reached predict_batch


async def test_one_deadline_timer_answers_each_item_at_its_own_deadline(
    sklearn_model: Any, pool: Any, digits: Any
) -> None:
    """Queued deadlines share one timer: a later request with an earlier deadline re-arms it,
    each request expires at its own deadline (not the other's), and one with none never does."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    batcher = make(model, pool, [], max_batch_size=8)
    running = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    start = time.monotonic()
    late = batcher.submit([x[1]], start + 0.30)
    early = batcher.submit([x[2], x[3]], start + 0.05)
    patient = batcher.submit([x[4]], FOREVER)
    first = await early.wait()
    assert all(isinstance(o.error, DeadlineExceeded) for o in first)
    assert time.monotonic() >= start + 0.05 - 0.001
    assert not any(f.done() for f in late.futures)  # its own deadline has not come yet
    second = await late.wait()
    assert isinstance(second[0].error, DeadlineExceeded)
    assert time.monotonic() >= start + 0.30 - 0.001
    assert not patient.futures[0].done()
    model.gate.set()
    await running.wait()
    assert (await patient.wait())[0].error is None
    assert model.calls == [1, 1]  # the expired items never reached predict_batch


async def test_second_worker_waits_max_wait(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """With two workers and one busy, the free one waits up to max_wait_ms for company."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=8, max_wait_ms=30, workers=2)
    first = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    second = [batcher.submit([x[i]], FOREVER) for i in (1, 2, 3)]
    assert batcher.queue_depth == 3  # gathering, not sent at once
    model.gate.set()
    await first.wait()
    for s in second:
        await s.wait()
    assert sorted(s.size for s in stats) == [1, 3]
    assert {s.reason for s in stats if s.size == 3} <= {"max_wait", "drain"}


async def test_linger_lets_a_lone_item_wait_for_company(
    sklearn_model: Any, pool: Any, digits: Any
) -> None:
    """With linger_ms, items arriving at an idle model share one batch instead of one each."""
    x, y = digits
    stats: list[BatchStats] = []
    batcher = make(sklearn_model, pool, stats, max_batch_size=8, linger_ms=200)
    first = batcher.submit([x[0]], FOREVER)
    await asyncio.sleep(0.02)  # not a wait for state: time in which a batcher without linger
    assert batcher.queue_depth == 1  # would have sent it; this one lingers, not sent
    second = batcher.submit([x[1], x[2]], FOREVER)
    outcomes = [*await first.wait(), *await second.wait()]
    assert [o.prediction.value for o in outcomes if o.prediction] == list(y[:3])
    assert [(s.size, s.reason) for s in stats] == [(3, "linger")]
    assert min(s.queue_s[0] for s in stats) >= 0.2  # the first item waited the whole linger


async def test_linger_never_holds_a_full_batch_or_a_drain(
    sklearn_model: Any, pool: Any, digits: Any
) -> None:
    """A full batch goes at once; draining sends what lingers without waiting it out."""
    x, _ = digits
    stats: list[BatchStats] = []
    batcher = make(sklearn_model, pool, stats, max_batch_size=4, linger_ms=10_000)
    start = time.monotonic()
    await batcher.submit([x[i] for i in range(4)], FOREVER).wait()
    lone = batcher.submit([x[4]], FOREVER)
    await asyncio.sleep(0.01)  # not a wait for state: the lone item lingers before drain()
    await batcher.drain()
    await lone.wait()
    assert time.monotonic() - start < 5.0  # neither waited out the 10 s linger
    assert [(s.size, s.reason) for s in stats] == [(4, "full"), (1, "drain")]


def test_linger_is_checked_by_config() -> None:
    with pytest.raises(ValueError, match="linger_ms"):
        BatchingConfig(linger_ms=-1)
    assert BatchingConfig().linger_ms == 0  # default: a lone item never waits


async def test_drain_answers_everything_queued(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """drain() refuses new items and returns once every queued item is answered."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    batcher = make(model, pool, [], max_batch_size=8)
    subs = [batcher.submit([x[i]], FOREVER) for i in range(50)]
    await model.wait_busy()
    draining = asyncio.ensure_future(batcher.drain())
    await asyncio.sleep(0)  # one turn of the loop: drain() starts and stops taking items
    with pytest.raises(Overloaded):
        batcher.submit([x[0]], FOREVER)
    model.gate.set()
    await draining
    assert all(s.futures[0].done() for s in subs)
    assert sum(model.calls) == 50


async def test_cost_shares_busy_time(sklearn_model: Any, pool: Any, digits: Any) -> None:
    """Each item's cost is the batch's busy seconds priced over slots, split over its items."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=64)
    first = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    rest = batcher.submit(list(x[1:11]), FOREVER)
    model.gate.set()
    outcomes = [*await first.wait(), *await rest.wait()]
    batch = stats[-1]
    assert batch.size == 10
    expected = PRICER.price_usd_per_second * batch.busy_s / PRICER.slots / 10
    assert outcomes[-1].cost_usd == pytest.approx(expected)
    assert math.fsum(o.cost_usd for o in outcomes) == pytest.approx(
        math.fsum(PRICER.batch_cost_usd(s.busy_s) for s in stats)
    )


async def test_sized_model_batches_similar_sizes(
    sklearn_model: Any, pool: Any, digits: Any
) -> None:
    """A sized model's batches group similar sizes, record padding, and starve no item."""
    x, _ = digits
    model = SizedDigits(sklearn_model)
    stats: list[BatchStats] = []
    batcher = make(model, pool, stats, max_batch_size=8)
    first = batcher.submit([x[0]], FOREVER)
    await model.wait_busy()
    subs = [batcher.submit([x[i]], FOREVER) for i in range(1, 201)]
    model.gate.set()
    await first.wait()
    outcomes = [(await s.wait())[0] for s in subs]
    assert all(o.error is None for o in outcomes)
    waste = [s.padding_waste for s in stats[1:] if s.padding_waste is not None]
    assert len(waste) == len(stats) - 1
    sizes = [int(np.count_nonzero(x[i])) for i in range(1, 201)]
    fifo_waste = [
        1 - sum(chunk) / (max(chunk) * len(chunk))
        for chunk in (sizes[i : i + 8] for i in range(0, 200, 8))
    ]
    assert np.mean(waste) < np.mean(fifo_waste)


def test_a_batch_that_outlives_its_loop_ends_quietly(
    sklearn_model: SklearnModel, pool: Any, digits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch still running when its server's loop closes has no one to answer: the slot
    thread drops it instead of failing in the pool's callback (concurrent.futures would log a
    traceback)."""
    x, _ = digits
    model = GatedModel(sklearn_model)
    stats: list[BatchStats] = []

    async def start_and_leave() -> None:
        batcher = make(model, pool, stats, max_batch_size=4)
        batcher.submit([x[0]], FOREVER)
        await model.wait_busy()

    asyncio.run(start_and_leave())  # closes the loop with the batch running
    with caplog.at_level("ERROR"):
        model.gate.set()
        pool.shutdown(wait=True)  # the batch ran, and its done-callback with it, in that thread
    assert model.calls == [1]
    assert stats == []  # never finished on the (closed) loop
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
