"""Selection rules: a caller's tier, a tight deadline and a busy model pick who answers."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.runtimes import sha256_of
from frugal.serving import build_engine
from frugal.types import Prediction
from tests.conftest import DIGITS_INPUTS, TEST_INSTANCE
from tests.waiting import eventually


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> dict[str, Path]:
    x, y = digits
    folder = tmp_path_factory.mktemp("rules")
    paths = {"small": folder / "small.joblib", "large": folder / "large.joblib"}
    joblib.dump(LogisticRegression(C=0.01, max_iter=3000).fit(x[:300], y[:300]), paths["small"])
    joblib.dump(RandomForestClassifier(n_estimators=50, random_state=0).fit(x[:1200], y[:1200]),
                paths["large"])  # fmt: skip
    return paths


class SlowLarge:
    """A large model that takes 50 ms a batch: queues build up behind it."""

    def predict_batch(self, items: Sequence[Any]) -> list[Prediction]:
        time.sleep(0.05)  # slow on purpose: the busy model the rules steer around
        return [Prediction(1, 1.0) for _ in items]


def make_slow_large() -> SlowLarge:
    return SlowLarge()


def entry(name: str, path: Path, **batching: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "sklearn", "path": str(path), "sha256": sha256_of(path),
            "inputs": DIGITS_INPUTS, "batching": {"max_wait_ms": 1, **batching}}  # fmt: skip


def rules_config(models: dict[str, Path], tmp_path: Path, rules: list[dict[str, Any]],
                 large: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "instance": TEST_INSTANCE,
        "models": [entry("small", models["small"]), large or entry("large", models["large"])],
        "endpoints": [{"name": "digits", "route": {
            "cascade": [{"model": "small", "accept": {"confidence": ">= 0.99"}},
                        {"model": "large"}],
            "rules": rules}}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 10,
                   "cost_interval_ms": 20},
    }  # fmt: skip


async def test_tier_and_deadline_rules_pick_the_models_in_order(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    rules: list[dict[str, Any]] = [
        {"name": "premium", "when": {"tier": ["gold", "platinum"]}, "start": "large"},
        {"name": "hurry", "when": {"deadline_ms": "< 200"}, "model": "small", "degraded": True},
    ]
    engine = build_engine(parse_config(rules_config(models, tmp_path, rules)))
    endpoint = engine.endpoint("digits")
    rows = [r.tolist() for r in digits[0][1300:1340]]
    try:
        gold = await engine.predict(endpoint, rows, deadline=time.monotonic() + 30, tier="gold")
        # Both rules match a gold caller in a hurry: the first one listed decides.
        gold_hurry = await engine.predict(endpoint, rows, deadline=time.monotonic() + 0.15,
                                          tier="gold")  # fmt: skip
        hurry = await engine.predict(endpoint, rows, deadline=time.monotonic() + 0.15)
        plain = await engine.predict(endpoint, rows, deadline=time.monotonic() + 30, tier="free")
    finally:
        await engine.drain()
    assert set(gold.models) == {"large:1"} and gold.route == "rule:premium"
    assert not gold.degraded
    assert set(gold_hurry.models) == {"large:1"}
    assert set(hurry.models) == {"small:1"} and hurry.route == "rule:hurry" and hurry.degraded
    assert plain.route.startswith("small:1*") and not plain.degraded  # the cascade as configured
    metrics = engine.metrics.render().decode()
    assert 'frugal_route_rule_total{degraded="false",endpoint="digits",rule="premium"} 2.0' in (
        metrics
    )
    assert 'frugal_route_rule_total{degraded="true",endpoint="digits",rule="hurry"} 1.0' in metrics


async def test_a_busy_large_model_degrades_to_the_small_one(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    """The large model runs one item per 50 ms batch: once 3 wait, requests go to small."""
    slow = {"name": "large", "runtime": "python", "inputs": DIGITS_INPUTS,
            "factory": "tests.routing.test_rules:make_slow_large",
            "batching": {"max_batch_size": 1, "max_wait_ms": 1, "timeout_ms": 30000}}  # fmt: skip
    rules = [{"name": "busy", "when": {"queue_depth": "> 2"}, "model": "small", "degraded": True}]
    data = rules_config(models, tmp_path, rules, large=slow)
    data["endpoints"][0]["route"] = {"model": "large", "rules": rules}
    engine = build_engine(parse_config(data))
    endpoint = engine.endpoint("digits")
    row = digits[0][1300].tolist()
    try:
        answers = await asyncio.gather(*(
            engine.predict(endpoint, [row], deadline=time.monotonic() + 30) for _ in range(30)
        ))  # fmt: skip
    finally:
        await engine.drain()
    degraded = [a for a in answers if a.degraded]
    full = [a for a in answers if not a.degraded]
    assert len(full) >= 3 and len(degraded) >= 10  # the first few queue, then the rule fires
    assert all(a.models == ["small:1"] and a.route == "rule:busy" for a in degraded)
    assert all(a.models == ["large:1"] and a.route == "" for a in full)
    metrics = engine.metrics.render().decode()
    assert (f'frugal_route_rule_total{{degraded="true",endpoint="digits",rule="busy"}} '
            f"{float(len(degraded))}") in metrics  # fmt: skip


def test_degraded_requests_are_marked_in_the_ledger_and_the_tier_header_counts_without_auth(
    serve: Any, models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    rules: list[dict[str, Any]] = [{"name": "hurry", "when": {"deadline_ms": "< 500"},
                                    "model": "small",
              "degraded": True},
             {"name": "premium", "when": {"tier": "gold"}, "start": "large"}]  # fmt: skip
    server = serve(parse_config(rules_config(models, tmp_path, rules)))
    body = {"instances": [digits[0][1300].tolist()]}
    url = f"{server.url}/v1/endpoints/digits/predict"
    hurried = httpx.post(url, json=body, headers={"x-frugal-deadline-ms": "300"}, timeout=30)
    gold = httpx.post(url, json=body, headers={"x-frugal-tier": "gold"}, timeout=30)
    assert hurried.status_code == gold.status_code == 200
    assert hurried.headers["x-frugal-model"] == "small:1"
    assert gold.headers["x-frugal-model"] == "large:1"

    def rows() -> list[tuple[str, str, int]]:
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            found = db.execute("SELECT model, route, degraded FROM requests ORDER BY ts")
            return found.fetchall()

    written = eventually(lambda: r if len(r := rows()) == 2 else [], "two ledger rows")
    assert written == [("small", "rule:hurry", 1), ("large", "rule:premium", 0)]


@pytest.mark.parametrize(
    ("route", "field", "message"),
    [
        (
            {"model": "small", "rules": [{"when": {}, "model": "large"}]},
            "endpoints[0].route.rules[0].when",
            "at least one of",
        ),
        (
            {"model": "small", "rules": [{"when": {"tier": "a"}, "start": "large"}]},
            "endpoints[0].route.rules[0].start",
            "names a tier of this route's cascade",
        ),
        (
            {"model": "small", "rules": [{"when": {"tier": "a"}, "model": "nope"}]},
            "endpoints[0].route.rules[0].model",
            "no model 'nope'",
        ),
        (
            {"model": "small", "rules": [{"when": {"wait_ms": "soon"}, "model": "large"}]},
            "endpoints[0].route.rules[0].when.wait_ms",
            "is not a comparison",
        ),
        (
            {
                "model": "small",
                "rules": [{"when": {"tier": "a"}, "model": "large", "start": "large"}],
            },
            "endpoints[0].route.rules[0]",
            "not both",
        ),
        ({"model": "small", "sticky": True}, "endpoints[0].route.sticky", "goes with `split`"),
        (
            {"split": [{"model": "small", "weight": 0}, {"model": "large", "weight": 0}]},
            "endpoints[0].route.split",
            "weight above 0",
        ),
        (
            {
                "split": [{"model": "small", "weight": 1}, {"model": "large", "weight": 1}],
                "rollback": {"error_rate_margin": None},
            },
            "endpoints[0].route.rollback",
            "give `error_rate_margin`",
        ),
        (
            {"model": "small", "shadow": {"model": "gone"}},
            "endpoints[0].route.shadow.model",
            "no model 'gone'",
        ),
        (
            {
                "model": "small",
                "cascade": [
                    {"model": "small", "accept": {"confidence": ">= 0.5"}},
                    {"model": "large"},
                ],
            },
            "endpoints[0].route",
            "exactly one of `model`, `cascade`",
        ),
    ],
)
def test_route_config_errors_name_the_field(
    models: dict[str, Path], tmp_path: Path, route: dict[str, Any], field: str, message: str
) -> None:
    data = rules_config(models, tmp_path, [])
    data["endpoints"][0]["route"] = route
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.field == field
    assert message in caught.value.message
