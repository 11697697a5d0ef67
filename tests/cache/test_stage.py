"""The cache stage in a real server: hits, single-flight, item-level misses, scopes, headers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.accounting import build_report
from frugal.cache import CacheStage, MemoryStore
from frugal.config import CacheConfig, parse_config
from frugal.types import ItemOutcome, Prediction
from tests.conftest import TEST_INSTANCE
from tests.waiting import eventually_async

CALLS: list[list[Any]] = []  # every batch the counting model received
GATE = threading.Event()


class Counting:
    """Doubles numbers; records each batch; raises on "bad"; waits on GATE for "slow"."""

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        CALLS.append(list(items))
        if "slow" in items:
            GATE.wait(20)
        if "bad" in items:
            raise ValueError("bad item")
        return [item * 2 for item in items]


def make_counting() -> Counting:
    return Counting()


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    GATE.set()


def cached_server(serve: Any, tmp_path: Path, **cache: Any) -> Any:
    return serve(parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "m", "runtime": "python",
                    "factory": "tests.cache.test_stage:make_counting",
                    "batching": {"max_batch_size": 64, "timeout_ms": 30000}}],
        "endpoints": [{"name": "e", "model": "m", "cache": {"ttl_s": 600, **cache}}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 10,
                   "cost_interval_ms": 20},
    }))  # fmt: skip


def predict(server: Any, instances: list[Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": instances},
                      headers=headers, timeout=30)  # fmt: skip


def items_computed() -> list[Any]:
    return [item for batch in CALLS for item in batch]


def test_second_request_is_a_hit_with_headers_and_ledger(serve: Any, tmp_path: Path) -> None:
    """A repeat is answered from the cache: header hit, no model call, saved dollars recorded;
    it costs only its share of the server's work (the lookup), no model dollars."""
    server = cached_server(serve, tmp_path)
    first = predict(server, ["ab"])
    second = predict(server, ["ab"])
    assert first.json() == second.json() == {"predictions": ["abab"]}
    assert first.headers["x-frugal-cache"] == "miss"
    assert second.headers["x-frugal-cache"] == "hit"
    assert second.headers["x-frugal-model"] == "m:1"
    assert items_computed() == ["ab"]
    server.__exit__()
    db = sqlite3.connect(tmp_path / "ledger.db")
    rows = db.execute(
        "SELECT cache, model_usd, saved_usd, cost_usd, overhead_usd FROM requests ORDER BY ts"
    ).fetchall()
    db.close()
    assert [r[0] for r in rows] == ["miss", "hit"]
    assert rows[0][1] > 0 and rows[1][1] == 0  # the hit ran no model
    assert rows[1][3] == rows[1][4]  # what it cost: its share of the server's work
    assert rows[1][2] == pytest.approx(rows[0][1])  # saved: the mean model cost of that item
    total = build_report(tmp_path / "ledger.db").total
    assert total.cache_hit_ratio == 0.5
    assert total.saved_usd == pytest.approx(rows[1][2])
    assert total.mean_batch_size == 1.0  # the hit ran in no batch and does not dilute the mean


def test_item_level_only_misses_are_computed(serve: Any, tmp_path: Path) -> None:
    """A request of 5 items with 3 cached computes 2, and answers all 5 in order."""
    server = cached_server(serve, tmp_path)
    predict(server, ["a", "b", "c"])
    CALLS.clear()
    r = predict(server, ["x", "a", "b", "y", "c"])
    assert r.json()["predictions"] == ["xx", "aa", "bb", "yy", "cc"]
    assert r.headers["x-frugal-cache"] == "partial"
    assert sorted(items_computed()) == ["x", "y"]


def test_same_item_twice_in_a_request_is_computed_once(serve: Any, tmp_path: Path) -> None:
    """Repeats inside one request are computed once and answered for every position."""
    server = cached_server(serve, tmp_path)
    r = predict(server, ["q", "q", "q"])
    assert r.json()["predictions"] == ["qq"] * 3
    assert items_computed() == ["q"]


def test_single_flight_100_concurrent_identical_requests(serve: Any, tmp_path: Path) -> None:
    """100 concurrent identical requests make exactly 1 model call and get 100 answers."""
    server = cached_server(serve, tmp_path)
    stage: CacheStage = server.engine.endpoints["e"].cache
    GATE.clear()

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            tasks = [
                asyncio.create_task(client.post("/v1/endpoints/e/predict",
                                                json={"instances": ["slow"]}))
                for _ in range(100)
            ]  # fmt: skip

            # The leader waits on GATE inside the model; release it once the other 99 follow.
            async def followed() -> bool:
                return stage.following >= 99

            await eventually_async(followed, "99 followers", timeout_s=20)
            GATE.set()
            return list(await asyncio.gather(*tasks))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 100
    assert {r.json()["predictions"][0] for r in responses} == {"slowslow"}
    assert len(CALLS) == 1
    assert sorted(r.headers["x-frugal-cache"] for r in responses) == ["miss"] + ["shared"] * 99


def test_errors_are_never_cached(serve: Any, tmp_path: Path) -> None:
    """An item the model fails on is not stored: asking again calls the model again."""
    server = cached_server(serve, tmp_path)
    assert predict(server, ["bad"]).status_code == 500
    assert predict(server, ["bad"]).status_code == 500
    assert items_computed() == ["bad", "bad"]
    assert server.engine.endpoints["e"].cache.store.stats().entries == 0


def test_user_scope_never_leaks_and_needs_a_user(serve: Any, tmp_path: Path) -> None:
    """A user-scoped answer is never served to another user; without a user, no caching."""
    server = cached_server(serve, tmp_path, scope="user")
    assert predict(server, ["z"], **{"x-frugal-user": "alice"}).headers["x-frugal-cache"] == "miss"
    assert predict(server, ["z"], **{"x-frugal-user": "alice"}).headers["x-frugal-cache"] == "hit"
    assert predict(server, ["z"], **{"x-frugal-user": "bob"}).headers["x-frugal-cache"] == "miss"
    anonymous = predict(server, ["z"])
    assert anonymous.headers["x-frugal-cache"] == "bypass"
    assert items_computed() == ["z", "z", "z"]


def test_invalidate_by_endpoint_then_miss(serve: Any, tmp_path: Path) -> None:
    """POST /admin/cache/invalidate drops the entries, so the next request computes again."""
    server = cached_server(serve, tmp_path)
    predict(server, ["k"])
    r = httpx.post(f"{server.url}/admin/cache/invalidate", json={"endpoint": "e"})
    assert r.status_code == 200 and r.json() == {"invalidated": 1}
    assert predict(server, ["k"]).headers["x-frugal-cache"] == "miss"
    unknown = httpx.post(f"{server.url}/admin/cache/invalidate", json={"endpoint": "nope"})
    assert unknown.status_code == 404
    bad = httpx.post(f"{server.url}/admin/cache/invalidate", json={"everything": True})
    assert bad.status_code == 400 and bad.json()["field"] == "everything"


async def test_new_model_version_never_serves_old_answers() -> None:
    """Stages of two versions over one store do not share entries: versions are in the key."""
    store = MemoryStore()
    seen: list[str] = []

    def stage_of(version: str) -> CacheStage:
        return CacheStage("e", CacheConfig(), store, [f"m:{version}"], mean_item_cost=lambda m: 0.0)

    async def compute_as(version: str, items: list[Any]) -> list[ItemOutcome]:
        seen.append(version)
        return [ItemOutcome(Prediction(f"{version}:{i}"), None, 0.0, None, f"m:{version}")
                for i in items]  # fmt: skip

    one = await stage_of("1").serve(["x"], "global", lambda it: compute_as("1", it))
    two = await stage_of("2").serve(["x"], "global", lambda it: compute_as("2", it))
    again = await stage_of("2").serve(["x"], "global", lambda it: compute_as("2", it))
    assert one.outcomes[0].prediction == Prediction("1:x")
    assert two.outcomes[0].prediction == Prediction("2:x") and two.label == "miss"
    assert again.label == "hit" and seen == ["1", "2"]


async def test_a_failure_during_lookup_leaves_no_flight_behind() -> None:
    """If a lookup fails after an item was claimed, later requests for it still get answered."""
    import numpy as np

    from frugal.cache import SemanticIndex

    def embed(texts: list[str]) -> np.ndarray:
        if "boom" in texts:
            raise RuntimeError("embedder down")
        return np.ones((len(texts), 4), dtype=np.float32) / 2

    stage = CacheStage("e", CacheConfig(), MemoryStore(), ["m:1"], mean_item_cost=lambda m: 0.0,
                       semantic=SemanticIndex(embed, threshold=0.99))  # fmt: skip

    async def compute(items: list[Any]) -> list[ItemOutcome]:
        return [ItemOutcome(Prediction(f"{x}!"), None, 0.0, None, "m:1") for x in items]

    with pytest.raises(RuntimeError, match="embedder down"):
        await stage.serve(["a", "boom"], "global", compute)
    assert stage.computing == 0
    again = await asyncio.wait_for(stage.serve(["a"], "global", compute), timeout=5)
    assert again.outcomes[0].prediction == Prediction("a!")
