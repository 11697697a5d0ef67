"""Cascades with real models: items stop at the right tier, in order, and cost what they used."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.runtimes import sha256_of
from frugal.types import Prediction
from tests.conftest import DIGITS_INPUTS, TEST_INSTANCE
from tests.waiting import eventually

THRESHOLD = 0.9


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> dict[str, Path]:
    """A weak small model (300 rows, strongly regularized) and a strong large one."""
    x, y = digits
    folder = tmp_path_factory.mktemp("cascade")
    small = LogisticRegression(C=0.01, max_iter=3000).fit(x[:300], y[:300])
    large = RandomForestClassifier(n_estimators=200, random_state=0).fit(x[:1200], y[:1200])
    paths = {"small": folder / "small.joblib", "large": folder / "large.joblib"}
    joblib.dump(small, paths["small"])
    joblib.dump(large, paths["large"])
    return paths


def model_entry(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "version": "1", "runtime": "sklearn", "path": str(path),
            "sha256": sha256_of(path), "inputs": DIGITS_INPUTS,
            "batching": {"max_batch_size": 64, "timeout_ms": 30000}, **extra}  # fmt: skip


def cascade_config(models: dict[str, Path], tmp_path: Path, accept: dict[str, str] | None = None,
                   **endpoint: Any) -> dict[str, Any]:  # fmt: skip
    gate = accept or {"confidence": f">= {THRESHOLD}"}
    return {
        "instance": TEST_INSTANCE,
        "models": [model_entry("small", models["small"]), model_entry("large", models["large"])],
        "endpoints": [{"name": "digits", "route": {"cascade": [
            {"model": "small", "accept": gate}, {"model": "large"}]}, **endpoint}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 10,
                   "cost_interval_ms": 20},
    }  # fmt: skip


def expected(models: dict[str, Path], rows: np.ndarray) -> tuple[list[int], list[str]]:
    small, large = joblib.load(models["small"]), joblib.load(models["large"])
    proba = small.predict_proba(rows)
    kept = proba.max(axis=1) >= THRESHOLD
    labels = np.where(kept, small.classes_[proba.argmax(axis=1)], large.predict(rows))
    return labels.tolist(), ["small:1" if k else "large:1" for k in kept]


async def test_items_stop_at_the_first_accepting_tier_in_order(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    from frugal.serving import build_engine

    x, _ = digits
    rows = x[1300:1400]
    engine = build_engine(parse_config(cascade_config(models, tmp_path)))
    endpoint = engine.endpoint("digits")
    try:
        answer = await engine.predict(endpoint, [r.tolist() for r in rows],
                                      deadline=time.monotonic() + 60)  # fmt: skip
    finally:
        await engine.drain()
    labels, answered_by = expected(models, rows)
    answered = [o.prediction.value for o in answer.outcomes if o.prediction is not None]
    assert answered == labels
    assert answer.models == answered_by
    kept, escalated = answered_by.count("small:1"), answered_by.count("large:1")
    assert kept > 10 and escalated > 10  # the test data exercises both tiers
    assert answer.route == f"small:1*{kept}>large:1*{escalated}"
    for outcome, model in zip(answer.outcomes, answered_by, strict=True):
        assert outcome.batch is not None
        if model == "large:1":  # paid for the small tier first, then the large one
            assert outcome.earlier_cost_usd > 0
            assert outcome.cost_usd == pytest.approx(
                outcome.earlier_cost_usd + outcome.batch.cost_per_item_usd
            )
        else:
            assert outcome.earlier_cost_usd == 0
    assert answer.cost_usd == pytest.approx(sum(o.cost_usd for o in answer.outcomes))
    metrics = engine.metrics.render().decode()
    assert (f'frugal_cascade_items_total{{endpoint="digits",model="small:1",result="escalated"}} '
            f"{float(escalated)}") in metrics  # fmt: skip
    assert (f'frugal_cascade_items_total{{endpoint="digits",model="small:1",result="accepted"}} '
            f"{float(kept)}") in metrics  # fmt: skip


async def test_margin_gate(models: dict[str, Path], tmp_path: Path, digits: Any) -> None:
    from frugal.serving import build_engine

    x, _ = digits
    rows = x[1400:1450]
    config = cascade_config(models, tmp_path, accept={"margin": ">= 0.8"})
    engine = build_engine(parse_config(config))
    endpoint = engine.endpoint("digits")
    try:
        answer = await engine.predict(endpoint, [r.tolist() for r in rows],
                                      deadline=time.monotonic() + 60)  # fmt: skip
    finally:
        await engine.drain()
    proba = np.sort(joblib.load(models["small"]).predict_proba(rows), axis=1)
    kept = (proba[:, -1] - proba[:, -2]) >= 0.8
    assert answer.models == ["small:1" if k else "large:1" for k in kept]


def score_even_rows(inputs: Sequence[Any], outputs: Sequence[Prediction]) -> list[float | None]:
    """A user scorer: accepts the small tier's answer when it predicted an even digit."""
    return [1.0 if p.value % 2 == 0 else 0.0 for p in outputs]


class FailsOnNegative:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        if any(float(np.min(i)) < 0 for i in items):
            raise ValueError("negative pixel")
        return [Prediction(-1, 1.0) for _ in items]


def make_fragile() -> FailsOnNegative:
    return FailsOnNegative()


async def test_scorer_gate_and_a_failing_tier_sends_items_on(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    from frugal.serving import build_engine

    x, _ = digits
    config = cascade_config(
        models, tmp_path,
        accept={"scorer": "tests.routing.test_cascade:score_even_rows", "threshold": ">= 0.5"},
    )  # fmt: skip
    engine = build_engine(parse_config(config))
    endpoint = engine.endpoint("digits")
    try:
        answer = await engine.predict(endpoint, [r.tolist() for r in x[1500:1540]],
                                      deadline=time.monotonic() + 60)  # fmt: skip
    finally:
        await engine.drain()
    small_says = joblib.load(models["small"]).predict(x[1500:1540])
    assert answer.models == ["small:1" if v % 2 == 0 else "large:1" for v in small_says]

    # A tier that raises on an item: that item goes on to the next tier, the rest stay.
    data = cascade_config(models, tmp_path)
    data["models"][0] = {"name": "small", "runtime": "python",
                         "factory": "tests.routing.test_cascade:make_fragile",
                         "inputs": DIGITS_INPUTS}  # fmt: skip
    engine = build_engine(parse_config(data))
    endpoint = engine.endpoint("digits")
    rows = [x[1].tolist(), [-1.0] * 64, x[2].tolist()]
    try:
        answer = await engine.predict(endpoint, rows, deadline=time.monotonic() + 60)
    finally:
        await engine.drain()
    assert answer.models == ["small:1", "large:1", "small:1"]
    assert [o.error for o in answer.outcomes] == [None, None, None]
    escalated = answer.outcomes[1].prediction
    assert escalated is not None and escalated.value in range(10)


def test_cascade_over_http_records_the_route(
    serve: Any, models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    x, _ = digits
    rows = x[1600:1632]
    server = serve(parse_config(cascade_config(models, tmp_path)))
    r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                   json={"instances": [row.tolist() for row in rows]}, timeout=60)  # fmt: skip
    assert r.status_code == 200
    labels, answered_by = expected(models, rows)
    assert r.json()["predictions"] == labels
    assert r.headers["x-frugal-model"] == ",".join(dict.fromkeys(answered_by))
    assert float(r.headers["x-frugal-cost-usd"]) > 0

    def routes() -> list[tuple[str]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            return db.execute("SELECT route FROM requests").fetchall()

    ((route,),) = eventually(routes, "the request's ledger row")
    kept = answered_by.count("small:1")
    assert route == f"small:1*{kept}>large:1*{len(rows) - kept}"


@pytest.mark.parametrize(
    ("route", "field", "message"),
    [
        ({"cascade": [{"model": "small"}, {"model": "large"}]},
         "endpoints[0].route.cascade[0].accept", "needs an `accept` gate"),
        ({"cascade": [{"model": "small", "accept": {"confidence": "0.9"}}, {"model": "large"}]},
         "endpoints[0].route.cascade[0].accept", "is not a comparison"),
        ({"cascade": [{"model": "small", "accept": {"confidence": ">= 0.9", "margin": "> 0.1"}},
                      {"model": "large"}]},
         "endpoints[0].route.cascade[0].accept", "exactly one of"),
        ({"cascade": [{"model": "small", "accept": {"confidence": ">= 0.9"}},
                      {"model": "large", "accept": {"confidence": ">= 0.5"}}]},
         "endpoints[0].route.cascade[1].accept", "last tier keeps every answer"),
        ({"cascade": [{"model": "small", "accept": {"confidence": ">= 0.9"}}, {"model": "nope"}]},
         "endpoints[0].route.cascade[1].model", "no model 'nope'"),
        ({"cascade": [{"model": "small", "accept": {"scorer": "x:y"}}, {"model": "large"}]},
         "endpoints[0].route.cascade[0].accept", "needs a `threshold`"),
    ],
)  # fmt: skip
def test_bad_cascades_name_the_field(
    models: dict[str, Path], tmp_path: Path, route: dict[str, Any], field: str, message: str
) -> None:
    data = cascade_config(models, tmp_path)
    data["endpoints"][0]["route"] = route
    with pytest.raises(ConfigError) as info:
        parse_config(data, file="frugal.yaml")
    assert info.value.field == field and message in info.value.message


def test_an_unimportable_scorer_stops_the_start(models: dict[str, Path], tmp_path: Path) -> None:
    from frugal.serving import build_engine

    data = cascade_config(models, tmp_path, accept={"scorer": "no_such_mod:f",
                                                     "threshold": ">= 1"})  # fmt: skip
    with pytest.raises(ConfigError, match="cannot import scorer no_such_mod:f"):
        build_engine(parse_config(data))
