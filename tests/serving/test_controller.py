"""The policy controller in a real server: load changes move its knobs the right way, within
bounds, and every change shows in the log, /metrics, the audit log and GET /admin/controller.

The busy model is bench/soak_model.py (a digits LogisticRegression that then holds its worker
for a fixed device time per batch and per item), served by the python runtime, so queues and
latencies come from real batches; the cache test serves the sklearn digits model.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.access import AuditLog
from frugal.config import parse_config
from frugal.routing.rules import RuleRouter
from frugal.runtimes import sha256_of
from frugal.serving import build_engine
from tests.conftest import DIGITS_INPUTS, ServerProcess, digits_config, write_config
from tests.waiting import eventually

SOAK_MODEL = Path(__file__).parents[2] / "bench" / "soak_model.py"
WAIT_S = 60.0  # each wait below needs a few dozen requests on a shared 2-core machine


def device_bound(name: str, batch_ms: float, item_ms: float, **batching: Any) -> dict[str, Any]:
    """A python-runtime model: real digits predictions, then a fixed device time held."""
    return {"name": name, "runtime": "python", "path": str(SOAK_MODEL),
            "sha256": sha256_of(SOAK_MODEL), "factory": "soak_model:make",
            "options": {"batch_ms": batch_ms, "item_ms": item_ms}, "inputs": DIGITS_INPUTS,
            "batching": {"max_wait_ms": 2, "timeout_ms": 20_000, **batching}}  # fmt: skip


class Load:
    """Requests of ``rows`` sent back to back from ``threads`` threads until the block ends."""

    def __init__(self, url: str, rows: list[list[float]], threads: int) -> None:
        self.url, self.rows = url, rows
        self.stop = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._send, daemon=True) for _ in range(threads)]

    def _send(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                client.post(self.url, json={"instances": self.rows})
                self.sent += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def controller_state(url: str) -> dict[str, Any]:
    reply = httpx.get(f"{url}/admin/controller", timeout=10)
    assert reply.status_code == 200, reply.text
    state: dict[str, Any] = reply.json()
    return state


def knob_value(url: str) -> float:
    value: float = controller_state(url)["knobs"][0]["value"]
    return value


def metric(url: str, line_start: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = [line for line in text.splitlines() if line.startswith(line_start)]
    assert len(found) == 1, (line_start, found)
    return float(found[0].rsplit(" ", 1)[1])


def sending_until(url: str, rows: list[list[float]], done: Any, what: str) -> None:
    """One request per check, until ``done()``: load exactly as light as one client."""

    def check() -> bool:
        assert httpx.post(url, json={"instances": rows}, timeout=30).status_code == 200
        return bool(done())

    eventually(check, what, timeout_s=WAIT_S)


@pytest.fixture
def controller_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="frugal.controller")
    yield caplog


def logged_changes(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    prefix = "controller change "
    return [json.loads(r.getMessage().removeprefix(prefix)) for r in caplog.records
            if r.name == "frugal.controller" and r.getMessage().startswith(prefix)]  # fmt: skip


def test_max_wait_rises_under_light_load_and_falls_under_heavy_load_within_its_bounds(
    serve: Any,
    tmp_path: Path,
    digits: Any,
    digits_model_file: Path,
    controller_log: pytest.LogCaptureFixture,
) -> None:
    """One client at a time: p99 about 21 ms, under half the 200 ms SLO, so the wait doubles
    up to its max (16). Four clients of 40 items: a queue of batches of 4 at 24 ms each, p99
    far over the SLO, so it halves down to its min (1) and stays there. (The SLO leaves a
    light-load batch 180 ms of stall on a busy machine before it would read as heavy.)"""
    data = digits_config(digits_model_file, tmp_path)
    data["models"] = [device_bound("soak", batch_ms=20, item_ms=1, max_batch_size=4, workers=2)]
    data["endpoints"] = [{"name": "digits", "model": "soak"}]
    data["controller"] = {
        "interval_s": 0.05, "window_s": 5, "min_samples": 10,
        "batching": [{"model": "soak", "slo_p99_ms": 200, "step": 2,
                      "max_wait_ms": {"min": 1, "max": 16}}],
    }  # fmt: skip
    server = serve(parse_config(data))
    url = f"{server.url}/v1/endpoints/digits/predict"
    rows = [r.tolist() for r in digits[0][:40]]
    batcher = server.engine.batchers["soak:1"]

    sending_until(url, rows[:1], lambda: knob_value(server.url) == 16, "max_wait_ms up to 16")
    assert batcher.config.max_wait_ms == 16  # what the batcher waits, not only what is shown
    with Load(url, rows, threads=4):
        eventually(lambda: knob_value(server.url) == 1, "max_wait_ms down to 1", timeout_s=WAIT_S)
    state = controller_state(server.url)
    changes = state["changes"]
    assert [(c["old"], c["new"]) for c in changes] == [
        (2, 4), (4, 8), (8, 16), (16, 8), (8, 4), (4, 2), (2, 1)
    ]  # fmt: skip
    for change in changes:
        assert change["knob"] == "max_wait_ms" and change["target"] == "soak:1"
        assert change["readings"]["samples"] >= 10 and change["readings"]["slo_p99_ms"] == 200
        rising = change["new"] > change["old"]
        assert (change["readings"]["p99_ms"] < 100) == rising
        assert ("over the SLO" in change["reason"]) != rising
    assert state["knobs"][0] | {"readings": None} == {
        "knob": "max_wait_ms", "target": "soak:1", "value": 1, "min": 1, "max": 16,
        "readings": None,
    }  # fmt: skip

    assert metric(server.url, 'frugal_controller_max_wait_seconds{model="soak:1"}') == 0.001
    total = 'frugal_controller_changes_total{direction="%s",knob="max_wait_ms",target="soak:1"}'
    assert metric(server.url, total % "up") == 3
    assert metric(server.url, total % "down") == 4
    assert [(c["knob"], c["old"], c["new"], c["reason"]) for c in logged_changes(controller_log)] \
        == [(c["knob"], c["old"], c["new"], c["reason"]) for c in changes]  # fmt: skip

    audit = AuditLog.from_config(server.app.config.ledger)

    def audited() -> list[Any]:
        rows = [e for e in audit.entries() if e.actor == "controller"]
        return rows if len(rows) == len(changes) else []

    entries = eventually(audited, "an audit row per change")
    assert {e.action for e in entries} == {"controller.max_wait_ms"}
    assert [(e.detail["old"], e.detail["new"]) for e in entries] == [
        (c["old"], c["new"]) for c in changes
    ]
    assert all(e.target == "soak:1" and "p99_ms" in e.detail["readings"] for e in entries)


def test_a_degrade_rule_goes_on_under_queue_depth_and_off_once_drained(
    serve: Any, tmp_path: Path, digits: Any, digits_model_file: Path
) -> None:
    """The slow model runs one item per 30 ms batch: two clients of 30 items queue past 20, the
    rule (answer with the small model) goes on; once they stop, the queue drains and it goes off.
    Off, the rule is never evaluated, although its own condition always holds."""
    data = digits_config(digits_model_file, tmp_path)
    data["models"][0]["name"] = "small"
    data["models"].append(device_bound("slow", batch_ms=30, item_ms=0, max_batch_size=1))
    data["endpoints"] = [
        {
            "name": "digits",
            "route": {
                "model": "slow",
                "rules": [
                    {
                        "name": "busy",
                        "when": {"deadline_ms": "> 0"},
                        "model": "small",
                        "degraded": True,
                    }
                ],
            },
        }
    ]
    data["controller"] = {
        "interval_s": 0.05,
        "degrade": [{"endpoint": "digits", "rule": "busy", "on_above": 20, "off_below": 2,
                     "min_on_s": 0.3}],
    }  # fmt: skip
    server = serve(parse_config(data))
    url = f"{server.url}/v1/endpoints/digits/predict"
    rows = [r.tolist() for r in digits[0][:30]]
    one = {"instances": rows[:1]}

    assert httpx.post(url, json=one, timeout=30).headers["x-frugal-model"] == "slow:1"
    with Load(url, rows, threads=2):
        eventually(lambda: knob_value(server.url) == 1, "the rule on", timeout_s=WAIT_S)

        def answered_by_small() -> httpx.Response | None:
            reply = httpx.post(url, json=one, timeout=30)
            return reply if reply.headers["x-frugal-model"] == "small:1" else None

        degraded = eventually(answered_by_small, "an answer from the small model while the "
                              "rule is on", timeout_s=WAIT_S)  # fmt: skip
    assert degraded is not None and degraded.status_code == 200
    eventually(lambda: knob_value(server.url) == 0, "the rule off", timeout_s=WAIT_S)
    assert httpx.post(url, json=one, timeout=30).headers["x-frugal-model"] == "slow:1"

    changes = controller_state(server.url)["changes"]
    assert changes[0]["new"] == 1 and changes[0]["readings"]["queue_depth"] >= 20
    assert "queue_depth" in changes[0]["reason"] and "reached 20" in changes[0]["reason"]
    assert changes[-1]["new"] == 0 and changes[-1]["readings"]["queue_depth"] <= 2
    assert [c["new"] for c in changes] == [1, 0] * (len(changes) // 2)  # on, off, on, off...
    assert all(c["target"] == "digits/busy" and c["knob"] == "degrade" for c in changes)
    ons = len(changes) // 2
    total = 'frugal_controller_changes_total{direction="%s",knob="degrade",target="digits/busy"}'
    assert metric(server.url, total % "on") == metric(server.url, total % "off") == ons
    active = 'frugal_controller_degrade_active{endpoint="digits",rule="busy"}'
    assert metric(server.url, active) == 0
    rule = 'frugal_route_rule_total{degraded="true",endpoint="digits",rule="busy"}'
    assert metric(server.url, rule) >= 1


def test_the_cache_ttl_follows_the_hit_ratio_within_its_bounds(
    serve: Any, tmp_path: Path, digits: Any, digits_model_file: Path
) -> None:
    """The same instance again and again: hits, so the TTL doubles up to its max (160 s).
    Instances never seen before: misses, so it halves down to its min (10 s)."""
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"] = [{"name": "digits", "model": "digits", "cache": {"ttl_s": 40}}]
    data["controller"] = {
        "interval_s": 0.05, "min_samples": 10,
        "cache": [{"endpoint": "digits", "ttl_s": {"min": 10, "max": 160},
                   "staleness_budget_s": 300}],
    }  # fmt: skip
    server = serve(parse_config(data))
    url = f"{server.url}/v1/endpoints/digits/predict"
    stage = server.engine.endpoints["digits"].cache
    rows = iter(r.tolist() for r in digits[0])

    same = [next(rows)]
    sending_until(url, same, lambda: knob_value(server.url) == 160, "ttl_s up to 160")
    assert stage.ttl_s == 160  # what new entries are stored with

    def new_rows() -> list[list[float]]:
        return [next(rows) for _ in range(5)]

    def unseen() -> bool:
        assert httpx.post(url, json={"instances": new_rows()}, timeout=30).status_code == 200
        return knob_value(server.url) == 10

    eventually(unseen, "ttl_s down to 10", timeout_s=WAIT_S)
    assert stage.ttl_s == 10
    # An entry stored from now on lives 10 s at most (the TTL it was started with was 40 s).
    assert httpx.post(url, json={"instances": new_rows()}, timeout=30).status_code == 200
    newest = next(reversed(stage.store._slots.values()))
    assert 0 < newest.expires_at - time.monotonic() <= 10
    changes = controller_state(server.url)["changes"]
    assert [(c["old"], c["new"]) for c in changes] == [
        (40, 80), (80, 160), (160, 80), (80, 40), (40, 20), (20, 10)
    ]  # fmt: skip
    for change in changes[:2]:
        assert change["readings"]["hit_ratio"] >= 0.5 and "reused" in change["reason"]
        assert change["readings"]["mean_hit_age_s"] < 300
    for change in changes[2:]:
        assert change["readings"]["hit_ratio"] < 0.1 and "rarely reused" in change["reason"]
    ttl = 'frugal_controller_cache_ttl_seconds{endpoint="digits"}'
    assert metric(server.url, ttl) == 10


def test_without_a_controller_section_the_admin_route_says_so(
    serve: Any, tmp_path: Path, digits_model_file: Path
) -> None:
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    reply = httpx.get(f"{server.url}/admin/controller", timeout=10)
    assert reply.status_code == 404
    assert "no `controller` section" in reply.json()["error"]
    assert "frugal_controller" not in httpx.get(f"{server.url}/metrics", timeout=10).text


async def test_enabled_false_builds_no_controller_and_leaves_its_rules_as_configured(
    tmp_path: Path, digits_model_file: Path
) -> None:
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"] = [
        {
            "name": "digits",
            "route": {
                "model": "digits",
                "rules": [{"name": "busy", "when": {"queue_depth": "> 9"}, "model": "digits"}],
            },
        }
    ]
    data["controller"] = {"enabled": False, "degrade": [
        {"endpoint": "digits", "rule": "busy", "on_above": 10, "off_below": 1}]}  # fmt: skip
    engine = build_engine(parse_config(data))
    try:
        assert engine.controller is None
        router = engine.endpoints["digits"].router
        assert isinstance(router, RuleRouter) and router.is_on("busy")
    finally:
        await engine.drain()


def test_frugal_serve_runs_the_controller_and_logs_its_changes(
    tmp_path: Path, digits: Any, digits_model_file: Path
) -> None:
    """The same wiring in a real `frugal serve` process: a change is in its log as one line."""
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"] = [{"name": "digits", "model": "digits", "cache": {"ttl_s": 40}}]
    data["controller"] = {
        "interval_s": 0.05,
        "min_samples": 10,
        "cache": [
            {"endpoint": "digits", "ttl_s": {"min": 10, "max": 80}, "staleness_budget_s": 300}
        ],
    }
    with ServerProcess(write_config(tmp_path, data)) as server:
        url = f"{server.url}/v1/endpoints/digits/predict"
        same = [digits[0][0].tolist()]
        sending_until(url, same, lambda: knob_value(server.url) == 80, "ttl_s up to 80")

        def logged() -> list[str]:
            return [line for line in server.log_text().splitlines() if "controller change" in line]

        lines = eventually(logged, "the change in the server's log")
    assert len(lines) == 1
    change = json.loads(lines[0].split("controller change ", 1)[1])
    assert (change["knob"], change["target"], change["old"], change["new"]) == (
        "cache_ttl_s", "digits", 40, 80
    )  # fmt: skip
    assert change["readings"]["hit_ratio"] >= 0.5


async def test_readings_start_when_the_controller_starts(
    tmp_path: Path, digits: Any, digits_model_file: Path
) -> None:
    """Lookups before the controller starts (start-up, a cache warm-up) are not traffic: 20
    misses then move nothing; 12 hits of one instance after it starts raise the TTL."""
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"] = [{"name": "digits", "model": "digits", "cache": {"ttl_s": 40}}]
    data["controller"] = {
        "min_samples": 10,
        "cache": [
            {"endpoint": "digits", "ttl_s": {"min": 10, "max": 160}, "staleness_budget_s": 300}
        ],
    }
    engine = build_engine(parse_config(data))
    controller, endpoint = engine.controller, engine.endpoint("digits")
    assert controller is not None
    rows = [r.tolist() for r in digits[0][:20]]
    try:
        await engine.predict(endpoint, rows, deadline=time.monotonic() + 30)
        controller.begin()
        assert controller.tick() == []  # 20 misses came before: no "rarely reused" move
        for _ in range(12):
            await engine.predict(endpoint, rows[:1], deadline=time.monotonic() + 30)
        [change] = controller.tick()
    finally:
        await engine.drain()
    assert (change.knob, change.old, change.new) == ("cache_ttl_s", 40, 80)
    assert change.readings["lookups"] == 12 and change.readings["hit_ratio"] == 1.0
