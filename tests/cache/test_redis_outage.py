"""A server whose cache lives in Redis keeps answering when Redis dies, and recovers after."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from frugal.config import parse_config
from tests.cache.conftest import RedisServer
from tests.conftest import TEST_INSTANCE
from tests.waiting import eventually


def test_redis_killed_mid_load_fails_no_request_and_recovers(
    serve: Any, tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """Redis killed under load: 0 failed requests (uncached); Redis back: hits again."""
    redis = redis_server_factory()
    port = redis.port
    server = serve(parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "m", "runtime": "python",
                    "factory": "tests.cache.test_stage:make_counting"}],
        "endpoints": [{"name": "e", "model": "m", "cache": {
            "store": "redis", "redis_url": f"redis://127.0.0.1:{port}/0", "timeout_ms": 50}}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }))  # fmt: skip
    url = f"{server.url}/v1/endpoints/e/predict"

    def ask(item: str) -> httpx.Response:
        return httpx.post(url, json={"instances": [item]}, timeout=10)

    assert ask("a").headers["x-frugal-cache"] == "miss"
    assert ask("a").headers["x-frugal-cache"] == "hit"
    redis.stop()
    during = [ask(item) for item in ["a", "b", "c"] * 20]
    assert [r.status_code for r in during] == [200] * 60
    assert {r.headers["x-frugal-cache"] for r in during} == {"miss"}
    assert during[0].json()["predictions"] == ["aa"]
    assert server.engine.endpoints["e"].cache.store.stats().errors > 0
    redis_server_factory(port=port)  # Redis returns on the same address

    def recovered() -> bool:
        ask("d")
        return ask("d").headers["x-frugal-cache"] == "hit"

    # The breaker retries after its reset time (5 s).
    eventually(recovered, "the cache to hit again", timeout_s=20, interval_s=0.2)
