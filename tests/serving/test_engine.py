"""The request path without HTTP: the engine, built by assembly, on a real digits model."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from frugal.config import parse_config
from frugal.errors import InvalidInput, NotFound
from frugal.serving import Engine, build_engine
from tests.conftest import digits_config, sqlite_ledger


@pytest.fixture
def engine(digits_model_file: Path, tmp_path: Path) -> Iterator[Engine]:
    data = digits_config(digits_model_file, tmp_path)
    first = data["models"][0]
    data["models"] += [
        dict(first, version="2", batching={"max_queue": 64, "timeout_ms": 9000}),
        dict(first, version="3", batching={"max_queue": 8}),
    ]
    data["endpoints"] = [
        {"name": "digits", "model": "digits:1"},
        {"name": "both", "route": {"cascade": [
            {"model": "digits:1", "accept": {"confidence": ">= 0.99"}}, {"model": "digits:2"}]}},
        {"name": "tight", "route": {"cascade": [
            {"model": "digits:1", "accept": {"confidence": ">= 0.99"}}, {"model": "digits:3"}]}},
    ]  # fmt: skip
    built = build_engine(parse_config(data))
    yield built
    built.slot_pool.shutdown()
    sqlite_ledger(built).close()


def rows(digits: Any, n: int) -> list[list[float]]:
    x, _ = digits
    return [r.tolist() for r in x[1500 : 1500 + n]]


def test_an_unknown_endpoint_names_the_served_ones(engine: Engine) -> None:
    """Looking up an endpoint that is not served is a NotFound listing those that are."""
    with pytest.raises(NotFound, match="served: both, digits, tight"):
        engine.endpoint("nope")


async def test_each_outcome_names_its_model_and_the_answer_sums_their_costs(
    engine: Engine, digits: Any, digits_model_file: Path
) -> None:
    """A prediction answers every item in order, and its cost is its items' costs added up."""
    answer = await engine.predict(engine.endpoint("digits"), rows(digits, 5),
                                  deadline=time.monotonic() + 30)  # fmt: skip
    model = joblib.load(digits_model_file)
    expected = model.predict(np.asarray(rows(digits, 5), dtype=np.float32)).tolist()
    assert answer.models == ["digits:1"] * 5 and answer.model_header == "digits:1"
    assert [o.prediction.value for o in answer.outcomes if o.prediction] == expected
    assert answer.cost_usd == math.fsum(o.cost_usd for o in answer.outcomes) > 0


async def test_a_cascade_outcome_keeps_what_each_tier_spent(engine: Engine, digits: Any) -> None:
    """An escalated item lists the first tier's share of its batch, then the second's."""
    answer = await engine.predict(engine.endpoint("both"), rows(digits, 40),
                                  deadline=time.monotonic() + 30)  # fmt: skip
    escalated = [o for o in answer.outcomes if o.model == "digits:2"]
    kept = [o for o in answer.outcomes if o.model == "digits:1"]
    assert escalated and kept  # at >= 0.99 some items are kept and some are not
    for outcome in escalated:
        assert outcome.batch is not None
        assert [model for model, _ in outcome.spend] == ["digits:1", "digits:2"]
        assert outcome.cost_usd == pytest.approx(math.fsum(usd for _, usd in outcome.spend))
    assert all(o.earlier == () for o in kept)


async def test_a_request_larger_than_a_queue_is_refused_naming_that_model(
    engine: Engine, digits: Any
) -> None:
    """More items than the smallest queue of the route can hold is a 400, never a 503."""
    with pytest.raises(InvalidInput, match="model digits:3 queues at most 8") as caught:
        await engine.predict(engine.endpoint("tight"), rows(digits, 9),
                             deadline=time.monotonic() + 30)  # fmt: skip
    assert caught.value.field == "instances"


def test_a_cascade_gets_its_longest_tier_timeout_unless_the_header_is_shorter(
    engine: Engine,
) -> None:
    """The endpoint deadline is the longest timeout of its models, cut by the client's header."""
    both = engine.endpoint("both")
    assert engine.endpoint_deadline(both, 100.0, None) == pytest.approx(109.0)
    assert engine.endpoint_deadline(both, 100.0, 250.0) == pytest.approx(100.25)
    assert engine.endpoint_deadline(engine.endpoint("digits"), 100.0, None) == pytest.approx(105)


def test_a_model_name_resolves_to_its_last_version(engine: Engine) -> None:
    """``name`` means its last declared version; an unknown version names what is served."""
    assert engine.resolve_model("digits", "1") == "digits:1"
    with pytest.raises(NotFound, match="served: digits:1, digits:2, digits:3"):
        engine.resolve_model("digits", "7")
    assert engine.resolve_model("digits") == "digits:3"


async def test_infer_takes_v2_tensors(engine: Engine, digits: Any) -> None:
    """A v2 request addresses a model version directly with a batch tensor."""
    data = np.asarray(rows(digits, 3), dtype=np.float32)
    tensors: list[dict[str, object]] = [{"name": "pixels", "datatype": "FP32", "shape": [3, 64],
                "data": data.ravel().tolist()}]  # fmt: skip
    answer = await engine.infer("digits:1", tensors, deadline=time.monotonic() + 30)
    assert len(answer.outcomes) == 3 and answer.first_error is None


async def test_drain_answers_everything_already_queued(engine: Engine, digits: Any) -> None:
    """Requests in flight when draining starts are all answered, none dropped."""
    endpoint = engine.endpoint("digits")
    pending = [
        asyncio.create_task(
            engine.predict(endpoint, rows(digits, 1), deadline=time.monotonic() + 30)
        )
        for _ in range(20)
    ]
    await asyncio.sleep(0)  # one turn of the loop: each task runs up to its batcher's wait
    await engine.drain()
    answers = await asyncio.gather(*pending)
    assert all(a.first_error is None for a in answers)
