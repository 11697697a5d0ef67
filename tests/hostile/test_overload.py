"""Issue 14, finding 2: when the server itself (its event loop, its connections) is the
bottleneck, new inference requests are refused early with 503 + Retry-After, and the health
routes keep answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx

from frugal.config import ServerConfig
from frugal.optimize import free_port
from frugal.serving.shedding import LoopLag, Shedder
from tests.conftest import ServerProcess, digits_config, write_config
from tests.hostile.raw_http import connect
from tests.hostile.readings import gauge, ledger_statuses
from tests.waiting import eventually, eventually_async

PREDICT = "/v1/endpoints/digits/predict"


class NoConnections:
    connections: Collection[object] = ()


def test_a_loop_that_stays_behind_is_shed_and_a_lone_hiccup_is_not() -> None:
    async def scenario() -> None:
        lag = LoopLag()
        shedder = Shedder(ServerConfig(max_loop_lag_ms=100), NoConnections(), lag)
        lag.start()
        await asyncio.sleep(0.05)
        # The loop blocked on purpose (a process descheduled once): probes see it at once,
        # shedding does not take one late tick for an overload.
        time.sleep(0.15)  # noqa: ASYNC251
        assert lag.now_s() > 0.1
        assert shedder.refusal(0) is None
        for _ in range(12):  # a loop that stays 200 ms behind
            time.sleep(0.2)  # noqa: ASYNC251
            await asyncio.sleep(0)
        refused = shedder.refusal(0)
        assert refused is not None and refused[0] == "loop_lag"
        assert "server.max_loop_lag_ms" in refused[1].message
        # Once the loop catches up, requests are admitted again (below half the bound).
        await eventually_async(_admits(shedder), "the shedder to admit again", timeout_s=10)
        await lag.stop()

    asyncio.run(scenario())


def _admits(shedder: Shedder) -> Any:
    async def check() -> bool:
        await asyncio.sleep(0.02)
        return shedder.refusal(0) is None

    return check


def test_past_max_connections_inference_gets_503_and_health_still_answers(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    server = {"max_connections": 4}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    x, _ = digits
    with ServerProcess(config) as process:
        idle = [connect(process.url) for _ in range(6)]
        eventually(lambda: gauge(process.url, "frugal_connections") >= 6, "6 connections open")
        refused = httpx.post(process.url + PREDICT, json={"instances": [x[0].tolist()]})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        assert "server.max_connections" in refused.json()["error"]
        live = httpx.get(process.url + "/v2/health/live")
        ready = httpx.get(process.url + "/v2/health/ready")
        assert (live.status_code, ready.status_code) == (200, 200)
        assert (
            'frugal_refused_total{reason="connections"} 1.0'
            in httpx.get(process.url + "/metrics").text
        )
        for sock in idle:
            sock.close()
        eventually(lambda: gauge(process.url, "frugal_connections") <= 2, "idle ones closed")
        ok = httpx.post(process.url + PREDICT, json={"instances": [x[0].tolist()]})
        assert ok.status_code == 200
    with_rows = ledger_statuses(tmp_path / "ledger.db")
    assert sorted(with_rows) == [200, 503]  # the refusal has its row too


def test_while_the_loop_is_behind_inference_is_refused_503_and_recorded(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    """The wiring of loop-lag shedding in a real server (when the lag counts as "behind" is the
    unit test above): with a bound of 1 microsecond the loop is always behind, so requests are
    refused with 503 + Retry-After naming the bound, each with its ledger row and metric, and
    the health routes still answer."""
    server = {"max_loop_lag_ms": 0.001}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    x, _ = digits
    n = 100
    with ServerProcess(config) as process:

        async def send() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(base_url=process.url, limits=limits, timeout=60) as c:
                return list(await asyncio.gather(*(
                    c.post(PREDICT, json={"instances": [x[i].tolist()]}) for i in range(n)
                )))  # fmt: skip

        answers = asyncio.run(send())
        assert httpx.get(process.url + "/v2/health/live").status_code == 200
        metrics = httpx.get(process.url + "/metrics").text
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}
    shed = [a for a in answers if a.status_code == 503]
    assert len(shed) >= n // 2, statuses
    assert all(a.headers["retry-after"] == "1" for a in shed)
    assert all("server.max_loop_lag_ms" in a.json()["error"] for a in shed)
    assert f'frugal_refused_total{{reason="loop_lag"}} {float(len(shed))}' in metrics
    assert sorted(ledger_statuses(tmp_path / "ledger.db")) == sorted(statuses)


def test_health_port_answers_from_its_own_thread(tmp_path: Path, digits_model_file: Path) -> None:
    port = free_port()
    server = {"health_port": port}
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path, server=server))
    with ServerProcess(config):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/v2/health/live").json() == {"live": True}
        assert httpx.get(base + "/v2/health/ready").json() == {"ready": True}
        assert httpx.get(base + "/v1/endpoints").status_code == 404
