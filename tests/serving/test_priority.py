"""Priority by caller tier (server.priority): served in tier order, starvation bounded, lower
tiers shed first, and all of it visible in the ledger, the report and /metrics."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from frugal.access import KeyStore
from frugal.accounting import Pricer, build_report
from frugal.config import BatchingConfig, PriorityConfig, parse_config
from frugal.errors import ConfigError, Overloaded
from frugal.runtimes import SizedModel
from frugal.serving.batcher import Batcher
from frugal.serving.priority import TierOrder
from frugal.types import ModelRef, Prediction
from tests.hostile.test_queue_admission import SlowDigits, slow_config, warm_up
from tests.waiting import eventually, eventually_async

PRICER = Pricer(price_usd_per_hour=3.6, slots=2)
TIERS = ["premium", "standard", "free"]
PREMIUM, STANDARD, FREE = 0, 1, 2


class SteppedDigits:
    """The real digits model; each call waits for a step the test gives, and records its items,
    so a test decides when the model is busy and sees which items each batch took."""

    def __init__(self, model_file: Path) -> None:
        self.ref = ModelRef("digits", "1")
        self.model = joblib.load(model_file)
        self.steps = threading.Semaphore(0)
        self.batches: list[list[int]] = []  # the item ids each call took, in call order
        self.called = threading.Event()

    async def started_more_than(self, calls: int) -> bool:
        return len(self.batches) > calls

    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        self.batches.append([int(i[0]) for i in items])  # the test puts an item id in pixel 0
        self.called.set()
        assert self.steps.acquire(timeout=10), "the test never gave this call a step"
        pixels = np.stack([np.asarray(i, dtype=np.float32) for i in items])
        return [Prediction(int(label)) for label in self.model.predict(pixels)]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as executor:
        yield executor


def tiered(model: Any, pool: ThreadPoolExecutor, starvation_ms: float = 60_000, **batching: Any
           ) -> Batcher:  # fmt: skip
    order = TierOrder(PriorityConfig(tiers=TIERS, starvation_ms=starvation_ms))
    return Batcher(model, BatchingConfig(**batching), slot_pool=pool, pricer=PRICER, tiers=order)


def item(ident: int, digits: Any) -> np.ndarray:
    row = np.array(digits[0][1300 + ident % 100], dtype=np.float32)
    row[0] = ident
    return row


async def test_waiting_items_are_served_highest_tier_first(
    digits_model_file: Path, digits: Any, pool: ThreadPoolExecutor
) -> None:
    """Items queued behind a busy model go premium, then standard, then free, each tier in
    arrival order, whatever order they arrived in."""
    model = SteppedDigits(digits_model_file)
    batcher = tiered(model, pool, max_batch_size=2)
    first = batcher.submit([item(0, digits)], math.inf, FREE)  # runs at once: the model is idle
    await asyncio.to_thread(model.called.wait, 10)
    arrivals = [(1, FREE), (2, STANDARD), (3, PREMIUM), (4, FREE), (5, PREMIUM), (6, STANDARD)]
    waiting = [batcher.submit([item(i, digits)], math.inf, rank) for i, rank in arrivals]
    model.steps.release(10)
    outcomes = [o for w in [first, *waiting] for o in await w.wait()]
    assert all(o.error is None for o in outcomes)
    assert model.batches == [[0], [3, 5], [2, 6], [1, 4]]


async def test_a_starved_item_is_served_while_higher_tiers_keep_arriving(
    digits_model_file: Path, digits: Any, pool: ThreadPoolExecutor
) -> None:
    """A free item that has waited past starvation_ms goes next although premium items wait,
    and premium items that came before it starved went first."""
    model = SteppedDigits(digits_model_file)
    batcher = tiered(model, pool, starvation_ms=50, max_batch_size=1)
    busy = batcher.submit([item(0, digits)], math.inf, PREMIUM)
    await asyncio.to_thread(model.called.wait, 10)
    free = batcher.submit([item(1, digits)], math.inf, FREE)
    premium = [batcher.submit([item(100, digits)], math.inf, PREMIUM)]
    served = 0
    while not free.futures[0].done():  # premium keeps arriving: one more for each one served
        premium.append(batcher.submit([item(100 + len(premium), digits)], math.inf, PREMIUM))
        model.steps.release()
        served += 1
        await eventually_async(partial(model.started_more_than, served), "the next batch")
        assert served < 1000, "the free item was never served"
    [outcome] = await free.wait()
    assert outcome.error is None
    assert outcome.queue_s >= 0.05  # it went by the bound, not by its tier
    assert any(not p.futures[0].done() for p in premium)  # ... while premium items waited
    model.steps.release(len(premium) + 1)
    await busy.wait()
    for p in premium:
        await p.wait()
    position = next(i for i, b in enumerate(model.batches) if b == [1])
    assert all(b[0] >= 100 for b in model.batches[1:position])  # before it: premium only


async def test_expected_wait_refuses_a_lower_tier_that_a_higher_one_passes(
    digits_model_file: Path, digits: Any, pool: ThreadPoolExecutor
) -> None:
    """With a queue of free items ahead, a free item is refused (503 + Retry-After) where a
    premium item with the same deadline is admitted, and the premium item runs first."""
    model = SlowDigits(str(digits_model_file), sleep_ms=100)
    model.ref = ModelRef("slow", "1")  # type: ignore[attr-defined]
    batcher = tiered(model, pool, max_batch_size=2)
    await batcher.submit([item(0, digits)], math.inf, FREE).wait()  # measures a batch: ~100 ms
    queued = [batcher.submit([item(i, digits)], math.inf, FREE) for i in range(1, 21)]
    deadline = time.monotonic() + 0.5
    with pytest.raises(Overloaded) as refused:
        batcher.submit([item(50, digits)], deadline, FREE)
    assert refused.value.retry_after_s >= 1
    premium = batcher.submit([item(51, digits)], deadline, PREMIUM)
    [answer] = await premium.wait()
    assert answer.error is None
    assert sum(q.futures[0].done() for q in queued) <= 4  # it passed the free queue ahead
    assert batcher.tiers is not None
    assert batcher.tiers.refused[FREE] == {"expected_wait": 1}
    assert batcher.tiers.refused[PREMIUM] == {}
    for q in queued:
        await q.wait()


class SteppedSizedDigits(SteppedDigits):
    """Stepped digits whose items have a size: the number of non-zero pixels."""

    def item_size(self, item: np.ndarray) -> int:
        return int(np.count_nonzero(item[1:]))


async def test_a_sized_batch_takes_no_lower_tier_ahead_of_a_waiting_higher_one(
    digits_model_file: Path, digits: Any, pool: ThreadPoolExecutor
) -> None:
    """Shape-aware batching under priority: the batch forms around the first premium item and
    takes only premium items, though free items of the very same size wait."""
    model = SteppedSizedDigits(digits_model_file)
    batcher = tiered(model, pool, max_batch_size=4)
    assert isinstance(model, SizedModel)  # so the batcher takes the shape-aware path

    def same_size(ident: int) -> np.ndarray:
        row = item(0, digits)  # one digit for all: every item has the same size
        row[0] = ident
        return row

    busy = batcher.submit([same_size(0)], math.inf, FREE)
    await asyncio.to_thread(model.called.wait, 10)
    same = [batcher.submit([same_size(i)], math.inf, FREE) for i in (1, 2)]
    premium = [batcher.submit([same_size(i)], math.inf, PREMIUM) for i in (3, 4)]
    model.steps.release(10)
    for waiting in [busy, *same, *premium]:
        assert all(o.error is None for o in await waiting.wait())
    assert model.batches[0] == [0]
    assert sorted(model.batches[1]) == [3, 4]  # premium alone, whatever sizes the free ones had
    assert sorted(i for b in model.batches[2:] for i in b) == [1, 2]


async def test_drain_answers_every_tier(
    digits_model_file: Path, digits: Any, pool: ThreadPoolExecutor
) -> None:
    """Shutdown's drain answers every queued item of every tier, as without priority."""
    model = SteppedDigits(digits_model_file)
    batcher = tiered(model, pool, max_batch_size=3)
    busy = batcher.submit([item(0, digits)], math.inf, FREE)
    await asyncio.to_thread(model.called.wait, 10)
    queued = [batcher.submit([item(i, digits)], math.inf, i % 3) for i in range(1, 10)]
    model.steps.release(10)
    await batcher.drain()
    outcomes = [o for w in [busy, *queued] for o in await w.wait()]
    assert len(outcomes) == 10 and all(o.error is None for o in outcomes)
    assert sorted(i for b in model.batches for i in b) == list(range(10))
    with pytest.raises(Overloaded):
        batcher.submit([item(11, digits)], math.inf, PREMIUM)
    assert batcher.tiers is not None and batcher.tiers.refused[PREMIUM] == {"draining": 1}


def test_priority_config_errors_name_the_field(digits_model_file: Path, tmp_path: Path) -> None:
    """Duplicate or empty tiers and a bad starvation bound are config errors naming the field."""
    cases = {
        "server.priority.tiers[1]": {"tiers": ["a", "a"]},
        "server.priority.tiers": {"tiers": []},
        "server.priority.starvation_ms": {"tiers": ["a"], "starvation_ms": 0},
        "server.priority.tiers[0]": {"tiers": [""]},
    }
    for field, priority in cases.items():
        data = slow_config(digits_model_file, tmp_path)
        data["server"] = {"priority": priority}
        with pytest.raises(ConfigError) as error:
            parse_config(data)
        assert field in str(error.value), (field, str(error.value))


def test_unknown_tiers_are_served_as_the_lowest() -> None:
    """A tier not configured, or none, ranks with the last configured tier."""
    order = TierOrder(PriorityConfig(tiers=TIERS))
    assert [order.rank(t) for t in ("premium", "standard", "free", "gold", None)] == [0, 1, 2, 2, 2]


# ---- over a real server -------------------------------------------------------------------


BURST = 60  # five times what the slow model answers within its 1 s timeout
PREMIUM_EVERY = 5  # 20% premium


async def tiered_burst(url: str, rows: list[list[float]], keys: dict[str, str]) -> list[
        tuple[str, httpx.Response]]:  # fmt: skip
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        tiers = ["premium" if i % PREMIUM_EVERY == 0 else "free" for i in range(BURST)]
        answers = await asyncio.gather(*(
            client.post(url, json={"instances": [rows[i % len(rows)]]},
                        headers={"authorization": f"Bearer {keys[tier]}"})
            for i, tier in enumerate(tiers)
        ))  # fmt: skip
        return list(zip(tiers, answers, strict=True))


def test_under_overload_the_free_tier_takes_the_503s(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """Five times capacity with 20% premium keys: premium requests are answered, the free
    tier's are refused with 503; the ledger, the report and /metrics show each tier."""
    data = slow_config(digits_model_file, tmp_path)
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    # A bound past the timeout: this test is about shedding, the one above about starvation.
    data["server"] = {"priority": {"tiers": ["premium", "free"], "starvation_ms": 5000}}
    store = KeyStore(tmp_path / "keys.db")
    keys = {tier: store.create(f"{tier}-key", "user", tier=tier)[1] for tier in ("premium", "free")}
    keys["admin"] = store.create("ops", "admin")[1]
    server = serve(parse_config(data))
    url = f"{server.url}/v1/endpoints/slow/predict"
    rows = [r.tolist() for r in digits[0][1300:1400]]
    with httpx.Client(timeout=30, headers={"authorization": f"Bearer {keys['free']}"}) as client:
        for row in rows[:10]:  # the batcher measures the model before the burst
            assert client.post(url, json={"instances": [row]}).status_code == 200
    answers = asyncio.run(tiered_burst(url, rows, keys))

    def statuses(tier: str) -> list[int]:
        return [r.status_code for t, r in answers if t == tier]

    premium, free = statuses("premium"), statuses("free")
    assert premium.count(200) >= 0.9 * len(premium), premium
    assert free.count(503) >= 0.5 * len(free), free
    assert premium.count(503) / len(premium) < free.count(503) / len(free)

    ledger = tmp_path / "ledger.db"

    def rows_by_tier() -> dict[tuple[str, int], int]:
        with sqlite3.connect(ledger) as db:
            found = db.execute("SELECT tier, status, COUNT(*) FROM requests GROUP BY 1, 2")
            return {(t, s): n for t, s, n in found}

    expected = {("premium", s): premium.count(s) for s in set(premium)}
    expected |= {("free", s): free.count(s) + (10 if s == 200 else 0) for s in set(free) | {200}}
    eventually(lambda: rows_by_tier() == expected, "a ledger row per request, with its tier")
    report = {r.key: r for r in build_report(ledger, by="tier").rows}
    assert report["premium"].requests == len(premium)
    assert report["free"].requests == len(free) + 10

    admin = {"authorization": f"Bearer {keys['admin']}"}
    metrics = httpx.get(f"{server.url}/metrics", headers=admin).text
    refused = 'frugal_tier_queue_refused_total{model="slow:1",reason="expected_wait",tier="free"}'
    assert refused in metrics
    assert 'frugal_tier_queue_seconds_count{model="slow:1",tier="premium"}' in metrics


def test_without_auth_the_tier_header_sets_the_tier(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """Without auth, x-frugal-tier names the tier (in the ledger); without priority configured
    the queue is FIFO and no per-tier metric appears."""
    server = serve(parse_config(slow_config(digits_model_file, tmp_path)))
    url = f"{server.url}/v1/endpoints/slow/predict"
    row = digits[0][1300].tolist()
    assert httpx.post(url, json={"instances": [row]}, headers={"x-frugal-tier": "gold"},
                      timeout=30).status_code == 200  # fmt: skip
    warm_up(url, [row] * 10)
    ledger = tmp_path / "ledger.db"

    def tiers() -> list[str]:
        with sqlite3.connect(ledger) as db:
            return [t for (t,) in db.execute("SELECT tier FROM requests ORDER BY ts")]

    assert eventually(lambda: t if len(t := tiers()) == 11 else None, "11 rows") == (
        ["gold"] + [""] * 10
    )
    v2 = httpx.post(f"{server.url}/v2/models/slow/infer", headers={"x-frugal-tier": "silver"},
                    json={"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                                      "data": row}]}, timeout=30)  # fmt: skip
    assert v2.status_code == 200, v2.text
    eventually(lambda: len(tiers()) == 12, "12 rows")
    assert tiers()[-1] == "silver"
    assert "frugal_tier_queue" not in httpx.get(f"{server.url}/metrics").text
    report = {r.key: r.requests for r in build_report(ledger, by="tier").rows}
    assert report == {"gold": 1, "(none)": 10, "silver": 1}


def test_report_by_tier_through_the_cli(tmp_path: Path, digits_model_file: Path,
                                        serve: Any, digits: Any) -> None:  # fmt: skip
    """`frugal report --by tier` groups the ledger by the caller's tier."""
    from click.testing import CliRunner

    from frugal.cli import main

    server = serve(parse_config(slow_config(digits_model_file, tmp_path)))
    url = f"{server.url}/v1/endpoints/slow/predict"
    row = digits[0][1300].tolist()
    for tier in ("premium", "premium", "free"):
        assert httpx.post(url, json={"instances": [row]}, headers={"x-frugal-tier": tier},
                          timeout=30).status_code == 200  # fmt: skip
    ledger = tmp_path / "ledger.db"
    eventually(lambda: len(build_report(ledger).rows) == 1
               and build_report(ledger).total.requests == 3, "3 rows")  # fmt: skip
    result = CliRunner().invoke(main, ["report", "--ledger", str(ledger), "--by", "tier",
                                       "--format", "csv"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = {line.split(",")[0]: line.split(",")[1] for line in result.output.splitlines()[1:]}
    assert lines["premium"] == "2" and lines["free"] == "1"
