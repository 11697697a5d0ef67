"""The same endpoints on Ray Serve: a local Ray (2 CPUs) started by this module, a real digits
model, a real redis-server. Both protocols answer through Ray with frugal's headers and
errors, two ingress replicas share one Redis cache, and the single ledger writer books every
request exactly once."""

from __future__ import annotations

import math
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.access import KeyStore
from frugal.config import FrugalConfig
from frugal.optimize import free_port
from frugal.scale.ray_deploy import RayDeployment, RayOptions, start
from tests.cache.conftest import RedisServer
from tests.conftest import TEST_INSTANCE, assert_charged, digits_config
from tests.scale.ray_support import require_ray
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(600)  # Ray and Serve start in ~30-60 s on a shared 2-core VM
RAY_START_S = 240.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray for the module: 2 CPUs, no dashboard (slow to start: started once)."""
    ray = require_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


class Deployed:
    """The running deployment and where its ledger is."""

    def __init__(self, deployment: RayDeployment, ledger: Path, keys: KeyStore) -> None:
        self.deployment = deployment
        self.url = deployment.url
        self.ledger = ledger
        self.keys = keys
        self.stopped = False
        self.headers = {"authorization": f"Bearer {keys.create('tests', 'user')[1]}"}

    def post(self, path: str, body: dict[str, Any], secret: str | None = None) -> httpx.Response:
        headers = self.headers if secret is None else {"authorization": f"Bearer {secret}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=30)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.deployment.stop()


@pytest.fixture(scope="module")
def deployed(
    ray_local: Any,
    redis_server: RedisServer,
    digits_model_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    """Two ingress replicas (0.5 CPU each) and one digits replica (1 CPU): the 2 CPUs."""
    tmp = tmp_path_factory.mktemp("ray")
    data = digits_config(digits_model_file, tmp)
    data["instance"] = {**TEST_INSTANCE, "vcpus": 2}  # 1 vCPU a slot, on any machine
    data["models"][0]["autoscaling"] = {"policy": "balanced", "min_replicas": 1,
                                        "max_replicas": 1}  # fmt: skip
    data["endpoints"][0]["cache"] = {"store": "redis", "redis_url": redis_server.url,
                                     "ttl_s": 600}  # fmt: skip
    data["auth"] = {"keys": str(tmp / "keys.db"), "reload_interval_s": 0.05}
    keys = KeyStore(tmp / "keys.db")
    config = FrugalConfig.model_validate(data)
    options = RayOptions(port=free_port(), ingress_replicas=2, ingress_cpus=0.5)
    running = Deployed(start(config, options), tmp / "ledger.db", keys)

    def ready() -> bool:
        return httpx.get(f"{running.url}/v2/health/ready", timeout=5).status_code == 200

    eventually(ready, "the Ray ingress to be ready", timeout_s=RAY_START_S,
               ignoring=(httpx.HTTPError,))  # fmt: skip
    yield running
    running.stop()


def request_id_of(response: httpx.Response) -> str:
    """The request's id: Serve's proxy sends its own x-request-id header beside frugal's echo
    of it (frugal takes the id the proxy put on the request), so both say the same."""
    ids = set(response.headers.get_list("x-request-id"))
    assert len(ids) == 1, ids
    return ids.pop()


def test_v2_route_answers_through_ray(deployed: Deployed, digits: Any) -> None:
    """A KServe v2 (tritonclient-compatible JSON) infer answers through Ray with frugal's
    headers."""
    x, y = digits
    rows = x[1300:1304]
    body = {"inputs": [{"name": "pixels", "shape": [4, 64], "datatype": "FP32",
                        "data": rows.tolist()}]}  # fmt: skip
    r = deployed.post("/v2/models/digits/infer", body)
    assert r.status_code == 200, r.text
    predict, confidence = r.json()["outputs"]
    assert predict["shape"] == [4] and predict["datatype"] == "INT64"
    assert np.mean(np.array(predict["data"]) == y[1300:1304]) >= 0.75
    assert all(0 < c <= 1 for c in confidence["data"])
    assert r.headers["x-frugal-model"] == "digits:1"
    assert float(r.headers["x-frugal-cost-usd"]) > 0
    assert request_id_of(r)


def test_v1_route_and_its_errors_answer_through_ray(deployed: Deployed, digits: Any) -> None:
    """The simple JSON route answers as in one process, and a bad body gets the same 400."""
    x, _ = digits
    r = deployed.post("/v1/endpoints/digits/predict", {"instances": x[1400:1402].tolist()})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 2
    assert r.headers["x-frugal-model"] == "digits:1"
    assert r.headers["x-frugal-cache"] in ("hit", "miss")
    bad = deployed.post("/v1/endpoints/digits/predict", {"instances": [[1, 2, 3]]})
    assert bad.status_code == 400
    assert bad.json()["field"] == "instances[0]"


def test_two_ingress_replicas_share_one_redis_cache(deployed: Deployed, digits: Any) -> None:
    """A miss answered by one ingress replica is a hit when another replica answers it."""
    x, _ = digits
    body = {"instances": [x[1500].tolist()]}
    path = "/v1/endpoints/digits/predict"
    first = deployed.post(path, body)
    assert first.status_code == 200 and first.headers["x-frugal-cache"] == "miss"
    missed_on = first.headers["x-frugal-replica"]
    # Serve picks the replica: 40 tries reach the other of two unless it never gets traffic
    # (odds 2^-40), so the loop is bounded and its end is a failure, not a wait.
    seen = set()
    for _ in range(40):
        again = deployed.post(path, body)
        assert again.status_code == 200
        assert again.headers["x-frugal-cache"] == "hit"
        assert again.json() == first.json()
        seen.add(again.headers["x-frugal-replica"])
        if seen - {missed_on}:
            break
    assert seen - {missed_on}, f"every answer came from {missed_on}"


def test_a_spent_budget_is_refused_by_both_ingress_replicas(
    deployed: Deployed, digits: Any
) -> None:
    """Keys and daily budgets work through Ray: a spent key gets frugal's 429 naming the
    budget from each ingress replica. (Which spending a replica saw, its own or the other's
    run read from the ledger, cannot be told apart from outside: Serve picks the replica.)"""
    x, _ = digits
    _, secret = deployed.keys.create("tight", "user", budget_usd_day=1e-12)
    body = {"instances": [x[1600].tolist()]}
    path = "/v1/endpoints/digits/predict"
    eventually(lambda: deployed.post(path, body, secret).status_code == 200,
               "the new key to load and spend its budget")  # fmt: skip
    refused_by: set[str] = set()

    def both_refuse() -> bool:
        r = deployed.post(path, body, secret)
        assert r.status_code in (200, 429), r.text
        if r.status_code == 429:
            assert r.json()["budget"]["name"] == "usd_day"
            refused_by.add(r.headers["x-frugal-replica"])
        return len(refused_by) == 2

    eventually(both_refuse, "both ingress replicas to refuse the spent key", timeout_s=30)


def test_the_ledger_counts_every_request_once(deployed: Deployed, digits: Any) -> None:
    """Every answer has one row (by x-request-id), and the rows' model dollars are the
    batches' dollars: a batch shared by requests of both ingress replicas is split, not
    counted twice. Stops the deployment (the run's end is stamped)."""
    x, _ = digits
    url = f"{deployed.url}/v1/endpoints/digits/predict"
    with httpx.Client(timeout=30, headers=deployed.headers) as client:
        answers = [client.post(url, json={"instances": x[i : i + 3].tolist()})
                   for i in range(0, 60, 3)]  # fmt: skip
    assert all(a.status_code == 200 for a in answers)
    deployed.stop()
    with sqlite3.connect(deployed.ledger) as db:
        rows = db.execute("SELECT request_id, cost_usd, model_usd, overhead_usd FROM requests")
        by_id: dict[str, list[tuple[float, float, float]]] = {}
        for request_id, cost, model, overhead in rows:
            by_id.setdefault(request_id, []).append((cost, model, overhead))
        batches_usd = math.fsum(c for (c,) in db.execute("SELECT cost_usd FROM batches"))
        runs = db.execute("SELECT price_usd_per_hour, stopped FROM runs").fetchall()
    for answer in answers:
        request_id = request_id_of(answer)
        booked = by_id.get(request_id, [])
        assert len(booked) == 1, f"{request_id}: {len(booked)} rows"
        cost, model, overhead = booked[0]
        assert cost == pytest.approx(model + overhead, rel=1e-12)
        assert_charged(answer.headers["x-frugal-cost-usd"], model)
    assert len(by_id) == sum(len(v) for v in by_id.values())  # no request twice, any test's
    models_usd = math.fsum(v[0][1] for v in by_id.values())
    assert models_usd == pytest.approx(batches_usd, rel=1e-9)
    # Each replica is a run priced at its share of the instance ($0.36/h over 2 vCPUs): two
    # ingress replicas of 0.5 CPU, one model replica of 1 CPU; each stamped stopped.
    price = TEST_INSTANCE["price_usd_per_hour"]
    assert sorted(p for p, _ in runs) == pytest.approx([price / 4, price / 4, price / 2])
    assert all(stopped is not None for _, stopped in runs)


def test_replicas_share_one_postgresql_ledger(
    deployed: Deployed, ray_local: Any, redis_server: RedisServer, digits_model_file: Path,
    pg_url: str, tmp_path: Path, digits: Any,
) -> None:  # fmt: skip
    """With ``ledger.url`` no writer actor runs: each replica opens the PostgreSQL ledger as a
    run of its own, and every answer still has exactly one row. Runs after the SQLite
    deployment (one Serve application at a time on this Ray)."""
    import psycopg

    deployed.stop()
    data = digits_config(digits_model_file, tmp_path)
    data["instance"] = {**TEST_INSTANCE, "vcpus": 2}
    data["models"][0]["autoscaling"] = {"policy": "balanced", "min_replicas": 1,
                                        "max_replicas": 1}  # fmt: skip
    data["endpoints"][0]["cache"] = {"store": "redis", "redis_url": redis_server.url,
                                     "ttl_s": 600}  # fmt: skip
    data["ledger"]["url"] = pg_url
    # Serve's HTTP proxy keeps the port it started on for the life of this Ray.
    port = int(deployed.url.rsplit(":", 1)[1])
    options = RayOptions(port=port, ingress_replicas=2, ingress_cpus=0.5)
    deployment = start(FrugalConfig.model_validate(data), options)
    try:
        eventually(lambda: httpx.get(f"{deployment.url}/v2/health/ready", timeout=5)
                   .status_code == 200, "the Ray ingress on PostgreSQL to be ready",
                   timeout_s=RAY_START_S, ignoring=(httpx.HTTPError,))  # fmt: skip
        x, _ = digits
        url = f"{deployment.url}/v1/endpoints/digits/predict"
        with httpx.Client(timeout=30) as client:
            answers = [client.post(url, json={"instances": x[i : i + 2].tolist()})
                       for i in range(0, 40, 2)]  # fmt: skip
        assert all(a.status_code == 200 for a in answers), answers[0].text
    finally:
        deployment.stop()
    with psycopg.connect(pg_url) as db:
        rows = db.execute("SELECT request_id FROM requests").fetchall()
        runs = db.execute("SELECT price_usd_per_hour, stopped FROM runs").fetchall()
    counted: dict[str, int] = {}
    for (request_id,) in rows:
        counted[request_id] = counted.get(request_id, 0) + 1
    for answer in answers:
        assert counted.get(request_id_of(answer)) == 1, request_id_of(answer)
    price = TEST_INSTANCE["price_usd_per_hour"]
    assert sorted(p for p, _ in runs) == pytest.approx([price / 4, price / 4, price / 2])
    assert all(stopped is not None for _, stopped in runs)
