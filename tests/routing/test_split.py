"""Versions served at once: weighted and sticky splits, shadows, and automatic rollback.

Real models (logistic regressions trained on digits, plus Python models that fail or sleep on
purpose to play a bad canary) behind a real engine; requests go through ``Engine.predict``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from frugal.access import AuditEntry, AuditLog
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from frugal.serving import build_engine
from frugal.serving.engine import Engine
from frugal.types import Prediction
from tests.conftest import DIGITS_INPUTS, TEST_INSTANCE
from tests.waiting import eventually_async

BATCHING = {"max_batch_size": 64, "max_wait_ms": 1, "max_queue": 20000, "timeout_ms": 30000}


def sklearn_model(version: str, path: Path, name: str = "clf") -> dict[str, Any]:
    return {"name": name, "version": version, "runtime": "sklearn", "path": str(path),
            "sha256": sha256_of(path), "inputs": DIGITS_INPUTS, "batching": BATCHING}  # fmt: skip


def both(versions: dict[str, Path]) -> list[dict[str, Any]]:
    return [sklearn_model("1", versions["1"]), sklearn_model("2", versions["2"])]


def python_model(version: str, factory: str, name: str = "clf") -> dict[str, Any]:
    return {"name": name, "version": version, "runtime": "python",
            "factory": f"tests.routing.test_split:{factory}", "inputs": DIGITS_INPUTS,
            "batching": BATCHING}  # fmt: skip


def config(tmp_path: Path, models: list[dict[str, Any]], route: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance": TEST_INSTANCE,
        "models": models,
        "endpoints": [{"name": "digits", "route": route}],
        "ledger": {
            "path": str(tmp_path / "ledger.db"),
            "flush_interval_ms": 10,
            "cost_interval_ms": 20,
        },
    }


class AlwaysFails:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        raise RuntimeError("the canary is broken")


class Slow:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        time.sleep(0.03)  # slow on purpose: a canary whose p99 the rollback watch must catch
        return [Prediction(0, 1.0) for _ in items]


class SaysSeven:
    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        return [Prediction(7, 1.0) for _ in items]


def make_failing() -> AlwaysFails:
    return AlwaysFails()


def make_slow() -> Slow:
    return Slow()


def make_seven() -> SaysSeven:
    return SaysSeven()


async def send(
    engine: Engine, rows: list[list[float]], n: int, users: Sequence[str | None] = (None,),
    concurrency: int = 64,
) -> list[Any]:  # fmt: skip
    """n one-item requests, ``concurrency`` at a time; request i comes from users[i % len]."""
    answers: list[Any] = []
    endpoint = engine.endpoint("digits")
    for start in range(0, n, concurrency):
        batch = range(start, min(n, start + concurrency))
        answers += await asyncio.gather(*(
            engine.predict(endpoint, [rows[i % len(rows)]], deadline=time.monotonic() + 30,
                           user=users[i % len(users)], request_id=f"r{i}")
            for i in batch
        ))  # fmt: skip
    return answers


async def test_weighted_split_over_10k_requests(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    """95/5: the canary's share is within 5 standard deviations of 5% (binomial)."""
    route = {"split": [{"model": "clf:1", "weight": 95}, {"model": "clf:2", "weight": 5}]}
    data = config(tmp_path, both(digit_versions), route)
    data["ledger"]["enabled"] = False
    engine = build_engine(parse_config(data))
    rows = [r.tolist() for r in digits[0][1300:1400]]
    n = 10_000
    try:
        answers = await send(engine, rows, n, concurrency=256)
    finally:
        await engine.drain()
    counts = Counter(a.models[0] for a in answers)
    sigma = (n * 0.05 * 0.95) ** 0.5
    assert abs(counts["clf:2"] - 0.05 * n) < 5 * sigma, counts
    assert counts["clf:1"] + counts["clf:2"] == n
    metrics = engine.metrics.render().decode()
    assert 'frugal_split_weight{endpoint="digits",model="clf:2"} 5.0' in metrics


async def test_sticky_users_never_flip_and_raising_a_canary_only_moves_users_to_it(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    route = {"split": [{"model": "clf:1", "weight": 80}, {"model": "clf:2", "weight": 20}],
             "sticky": True}  # fmt: skip
    data = config(tmp_path, both(digit_versions), route)
    engine = build_engine(parse_config(data))
    rows = [r.tolist() for r in digits[0][1300:1400]]
    users = [f"user-{i}" for i in range(500)]
    try:
        answers = await send(engine, rows, 5 * len(users), users)  # five requests each
        before: dict[str, set[str]] = {}
        for i, answer in enumerate(answers):
            before.setdefault(users[i % len(users)], set()).add(answer.models[0])
        assert all(len(seen) == 1 for seen in before.values())  # nobody flipped
        on_canary = sum(seen == {"clf:2"} for seen in before.values())
        assert 0.2 * 500 - 5 * 9 < on_canary < 0.2 * 500 + 5 * 9  # 20% of users, +-5 sigma

        await engine.routes.change("digits", {"weights": {"clf:1": 50, "clf:2": 50}}, "test")
        answers = await send(engine, rows, len(users), users)
    finally:
        await engine.drain()
    after = {users[i]: a.models[0] for i, a in enumerate(answers)}
    moved = [u for u in users if after[u] not in before[u]]
    assert moved  # some users went to the canary ...
    assert all(before[u] == {"clf:1"} and after[u] == "clf:2" for u in moved)  # ... and only so


async def test_shadow_never_changes_the_answer_and_is_priced_apart(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    """A shadow that always says 7: answers are v1's; agreement counts the 7s; rows say shadow."""
    models = [sklearn_model("1", digit_versions["1"]), python_model("9", "make_seven")]
    route = {"model": "clf:1", "shadow": {"model": "clf:9"}}
    engine = build_engine(parse_config(config(tmp_path, models, route)))
    x, _ = digits
    rows = [r.tolist() for r in x[1300:1500]]
    try:
        answers = await send(engine, rows, len(rows))
    finally:
        await engine.drain()  # waits for the shadow copies, then flushes the ledger
    expected = joblib.load(digit_versions["1"]).predict(np.array(rows)).tolist()
    assert [a.outcomes[0].prediction.value for a in answers] == expected
    assert {a.models[0] for a in answers} == {"clf:1"}
    sevens = expected.count(7)
    metrics = engine.metrics.render().decode()
    labels = 'endpoint="digits",model="clf:9"'
    assert f'frugal_shadow_items_total{{{labels},result="agreed"}} {float(sevens)}' in metrics
    assert (f'frugal_shadow_items_total{{{labels},result="disagreed"}} '
            f"{float(len(rows) - sevens)}") in metrics  # fmt: skip
    assert f"frugal_shadow_latency_seconds_count{{{labels}}} {float(len(rows))}" in metrics
    # The shadow's copies are not requests anyone made.
    assert 'frugal_requests_total{endpoint="digits",model="clf:9"' not in metrics
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows_by_kind = dict(db.execute(
            "SELECT shadow, count(*) FROM requests GROUP BY shadow").fetchall())  # fmt: skip
        shadow_rows = db.execute(
            "SELECT model, version, key_name, cost_usd, status FROM requests WHERE shadow = 1"
        ).fetchall()
    assert rows_by_kind == {1: len(rows)}  # the answers' own rows are the HTTP layer's
    assert {(m, v, k, s) for m, v, k, _, s in shadow_rows} == {("clf", "9", "", 200)}
    assert all(cost > 0 for *_, cost, _ in shadow_rows)


async def test_a_failing_shadow_fails_no_request(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    models = [sklearn_model("1", digit_versions["1"]), python_model("9", "make_failing")]
    route = {"model": "clf:1", "shadow": {"model": "clf:9"}}
    engine = build_engine(parse_config(config(tmp_path, models, route)))
    rows = [r.tolist() for r in digits[0][1300:1340]]
    try:
        answers = await send(engine, rows, len(rows))
    finally:
        await engine.drain()
    assert all(a.first_error is None for a in answers)
    metrics = engine.metrics.render().decode()
    assert ('frugal_shadow_items_total{endpoint="digits",model="clf:9",result="failed"} '
            f"{float(len(rows))}") in metrics  # fmt: skip


@pytest.mark.parametrize(
    ("factory", "rollback", "reason"),
    [
        ("make_failing", {"error_rate_margin": 0.05}, "error rate 100.0% vs 0.0%"),
        ("make_slow", {"p99_margin_ms": 15, "error_rate_margin": None}, "p99"),
    ],
)
async def test_a_bad_canary_is_rolled_back_with_an_audited_event(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any, factory: str,
    rollback: dict[str, Any], reason: str,
) -> None:  # fmt: skip
    route = {"split": [{"model": "clf:1", "weight": 70}, {"model": "clf:2", "weight": 30}],
             "rollback": {"window_s": 60, "min_requests": 20, **rollback}}  # fmt: skip
    models = [sklearn_model("1", digit_versions["1"]), python_model("2", factory)]
    engine = build_engine(parse_config(config(tmp_path, models, route)))
    rows = [r.tolist() for r in digits[0][1300:1400]]
    try:
        first = await send(engine, rows, 300, concurrency=4)

        async def rolled_back() -> bool:
            # The watch judges on a request's answer, at most every 0.25 s: keep asking.
            await send(engine, rows, 1, concurrency=1)
            return engine.routes.splits["digits"].router.weights["clf:2"] == 0.0

        async def audited() -> list[AuditEntry]:  # the audit row is written off the loop
            entries = AuditLog(tmp_path / "ledger.db").entries()
            return [e for e in entries if e.action == "route.auto_rollback"]

        await eventually_async(rolled_back, "the watch to roll the canary back", interval_s=0.05)
        await eventually_async(audited, "the rollback's audit row")
        later = await send(engine, rows, 100, concurrency=4)
    finally:
        await engine.drain()
    assert any(a.models[0] == "clf:2" for a in first)  # the canary did get traffic ...
    assert engine.routes.splits["digits"].router.weights == {"clf:1": 70.0, "clf:2": 0.0}
    assert all(a.models[0] == "clf:1" for a in later)  # ... and after the rollback none
    metrics = engine.metrics.render().decode()
    assert 'frugal_rollbacks_total{endpoint="digits",model="clf:2"} 1.0' in metrics
    (event,) = [e for e in AuditLog(tmp_path / "ledger.db").entries()
                if e.action == "route.auto_rollback"]  # fmt: skip
    assert event.actor == "rollback" and event.target == "digits"
    assert event.detail["before"] == {"clf:1": 70.0, "clf:2": 30.0}
    assert event.detail["after"] == {"clf:1": 70.0, "clf:2": 0.0}
    assert reason in event.detail["reason"]
    assert event.detail["canary"]["requests"] >= 20


async def test_no_rollback_while_the_canary_is_as_good(
    digit_versions: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    route = {"split": [{"model": "clf:1", "weight": 50}, {"model": "clf:2", "weight": 50}],
             "rollback": {"min_requests": 20, "error_rate_margin": 0.0}}  # fmt: skip
    data = config(tmp_path, both(digit_versions), route)
    engine = build_engine(parse_config(data))
    try:
        await send(engine, [r.tolist() for r in digits[0][1300:1400]], 300, concurrency=4)
    finally:
        await engine.drain()
    assert engine.routes.splits["digits"].router.weights == {"clf:1": 50.0, "clf:2": 50.0}


async def test_stored_weights_reach_other_workers_and_survive_a_restart_until_the_config_changes(
    digit_versions: dict[str, Path], tmp_path: Path
) -> None:
    route = {"split": [{"model": "clf:1", "weight": 90}, {"model": "clf:2", "weight": 10}]}
    data = config(tmp_path, both(digit_versions), route)
    one, two = build_engine(parse_config(data)), build_engine(parse_config(data))
    try:
        await two.routes.load()
        await one.routes.change("digits", {"promote": "clf:2"}, "alice")
        await two.routes.load()  # what the watch loop does every second
        assert two.routes.splits["digits"].router.weights == {"clf:1": 0.0, "clf:2": 100.0}
    finally:
        await one.drain()
        await two.drain()
    restarted = build_engine(parse_config(data))
    await restarted.routes.load()
    assert restarted.routes.splits["digits"].router.weights == {"clf:1": 0.0, "clf:2": 100.0}
    await restarted.drain()
    route["split"][1]["weight"] = 20  # the config was edited since: it wins
    edited = build_engine(parse_config(data))
    await edited.routes.load()
    assert edited.routes.splits["digits"].router.weights == {"clf:1": 90.0, "clf:2": 20.0}
    await edited.drain()
