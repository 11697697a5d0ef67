"""Reports reconcile: allocated + idle = billed, and every grouping adds up to the ledger's rows."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frugal.accounting import BatchRow, LedgerRow, Pricer, Report, SqliteLedger, build_report
from frugal.config import parse_config
from frugal.errors import ConfigError
from tests.conftest import digits_config

STARTED = 1_700_000_000.0
# Which endpoints serve each model version; two endpoints share m:2.
ENDPOINTS = {"m:1": ["alpha"], "m:2": ["beta", "gamma"], "n:1": ["delta"]}


@dataclass(frozen=True)
class Traffic:
    """What one run served, with the timestamps and costs the server would have written."""

    pricer: Pricer
    stopped: float
    batches: list[BatchRow]
    requests: list[LedgerRow]

    @property
    def billed_usd(self) -> float:
        return self.pricer.billed_usd(self.stopped - STARTED)


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    """Batches one after another with idle gaps; their items grouped into requests of 1-5 items.

    A request's items come from consecutive batches of one model version, as the batcher splits
    a request that does not fit; failed items still cost their share, and some requests are
    refused before reaching a batch (no items, no cost).
    """
    pricer = Pricer(price_usd_per_hour=draw(st.floats(0.005, 100.0)), slots=draw(st.integers(1, 8)))
    rnd = draw(st.randoms(use_true_random=False))  # the many small choices, cheaply
    n_batches = draw(st.integers(1, 20))
    now = STARTED
    batches: list[BatchRow] = []
    items_by_model: dict[str, list[tuple[float, float, bool, int]]] = {k: [] for k in ENDPOINTS}
    refused: list[tuple[float, int]] = []
    for _ in range(n_batches):
        now += draw(st.floats(0.0, 30.0))  # idle before the batch
        key = draw(st.sampled_from(sorted(ENDPOINTS)))
        size = draw(st.integers(1, 64))
        busy_s = draw(st.floats(1e-5, 5.0))
        failed = set(rnd.sample(range(size), draw(st.integers(0, size))))
        item_cost = pricer.item_cost_usd(busy_s, size)  # exactly as the batcher prices
        name, _, version = key.partition(":")
        batches.append(
            BatchRow(
                ts=now,
                model=name,
                version=version,
                size=size,
                reason="full",
                busy_s=busy_s,
                cost_usd=item_cost * size,
                queue_ms_mean=1.0,
                queue_ms_max=2.0,
                failed=len(failed),
            )
        )
        now += busy_s
        items_by_model[key] += [(now, item_cost, i in failed, size) for i in range(size)]
        refused += [
            (now, status) for status in draw(st.lists(st.sampled_from([400, 404, 429]), max_size=4))
        ]
    stopped = now + draw(st.floats(0.0, 30.0))
    requests: list[LedgerRow] = []
    for key, items in items_by_model.items():
        while items:
            n = rnd.randint(1, 5)
            taken, items = items[:n], items[n:]
            all_failed = all(failed for _, _, failed, _ in taken)
            requests.append(
                request_row(
                    len(requests),
                    rnd.choice(ENDPOINTS[key]),
                    key,
                    ts=max(ts for ts, _, _, _ in taken),
                    items=len(taken),
                    cost=math.fsum(cost for _, cost, _, _ in taken),  # as Engine sums outcomes
                    status=500 if all_failed else 200,
                    batch_size=sum(size for _, _, _, size in taken) / len(taken),
                )
            )
    for ts, status in refused:
        key = rnd.choice(sorted(ENDPOINTS))
        endpoint = rnd.choice(ENDPOINTS[key])
        requests.append(
            request_row(len(requests), endpoint, key, ts=ts, items=0, cost=0.0, status=status)
        )
    return Traffic(pricer, stopped, batches, requests)


def request_row(
    i: int,
    endpoint: str,
    key: str,
    *,
    ts: float,
    items: int,
    cost: float,
    status: int,
    batch_size: float = 0.0,
) -> LedgerRow:
    name, _, version = key.partition(":")
    return LedgerRow(
        ts=ts,
        request_id=f"r{i}",
        endpoint=endpoint,
        model=name,
        version=version,
        items=items,
        batch_size=batch_size,
        queue_ms=1.0,
        compute_ms=2.0,
        latency_ms=float(i % 97),
        cost_usd=cost,
        status=status,
    )


def write_ledger(path: Path, t: Traffic) -> None:
    """Record the traffic through SqliteLedger, then bracket it with the run's start and stop."""
    ledger = SqliteLedger(path)
    ledger.open(
        instance="custom", price_usd_per_hour=t.pricer.price_usd_per_hour, slots=t.pricer.slots
    )
    for batch in t.batches:
        ledger.record_batch(batch)
    for row in t.requests:
        ledger.record(row)
    ledger.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE runs SET started = ?, stopped = ? WHERE run_id = ?",
            (STARTED, t.stopped, ledger.run_id),
        )


def report_of(t: Traffic, **kwargs: Any) -> Report:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.db"
        write_ledger(path, t)
        return build_report(path, **kwargs)


def reports_of(t: Traffic) -> tuple[dict[str, Report], float]:
    """The report grouped each way, and the sum of the ledger's own cost_usd column."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.db"
        write_ledger(path, t)
        with closing(sqlite3.connect(path)) as db:
            costs = [c for (c,) in db.execute("SELECT cost_usd FROM requests")]
        by = {g: build_report(path, by=g) for g in ("endpoint", "model", "version")}
        return by, math.fsum(costs)


EXAMPLES = settings(max_examples=40, deadline=None)


@EXAMPLES
@given(traffic())
def test_allocated_plus_idle_is_billed(t: Traffic) -> None:
    """Allocated (the requests' costs) + idle = billed (price x the run's wall time), within 1%."""
    report = report_of(t)
    busy_usd = math.fsum(t.pricer.batch_cost_usd(b.busy_s) for b in t.batches)
    assert report.billed_usd == pytest.approx(t.billed_usd, rel=1e-9)
    assert report.allocated_usd + report.idle_usd == pytest.approx(report.billed_usd, rel=0.01)
    # Stronger: every batch's busy time is shared out to its items' requests, to the float.
    assert report.allocated_usd == pytest.approx(busy_usd, rel=1e-9)
    assert report.busy_usd == pytest.approx(busy_usd, rel=1e-9)
    assert report.idle_usd == pytest.approx(t.billed_usd - busy_usd, rel=1e-9, abs=1e-15)
    # Batches run one at a time, so never busier than the bill (timestamps near 1.7e9 s carry
    # about 1e-7 s of rounding each).
    assert report.idle_usd >= -t.pricer.billed_usd(1e-6 * len(t.batches))


@EXAMPLES
@given(traffic())
def test_report_totals_equal_its_rows_and_the_ledger(t: Traffic) -> None:
    """Each grouping's total equals the sum of its rows, of the ledger's rows and of the others."""
    reports, ledger_cost = reports_of(t)
    expected_cost = math.fsum(r.cost_usd for r in t.requests)
    errors = sum(r.status >= 400 for r in t.requests)
    items = sum(r.items for r in t.requests)
    assert ledger_cost == pytest.approx(expected_cost, rel=1e-9)
    for by, report in reports.items():
        rows, total = report.rows, report.total
        assert sum(r.requests for r in rows) == total.requests == len(t.requests), by
        assert sum(r.errors for r in rows) == total.errors == errors, by
        assert sum(r.items for r in rows) == total.items == items, by
        assert math.fsum(r.cost_usd for r in rows) == pytest.approx(total.cost_usd, rel=1e-9)
        assert total.cost_usd == pytest.approx(expected_cost, rel=1e-9)
        assert report.allocated_usd == total.cost_usd
    endpoint_keys = {r.key for r in reports["endpoint"].rows}
    assert endpoint_keys == {r.endpoint for r in t.requests}
    assert {r.key for r in reports["model"].rows} == {r.model for r in t.requests}
    assert {r.key for r in reports["version"].rows} == {
        f"{r.model}:{r.version}" for r in t.requests
    }
    for row in reports["endpoint"].rows:
        mine = [r for r in t.requests if r.endpoint == row.key]
        assert row.requests == len(mine)
        assert row.cost_usd == pytest.approx(math.fsum(r.cost_usd for r in mine), rel=1e-9)
    first, *others = reports.values()
    for other in others:
        assert (other.billed_usd, other.idle_usd, other.busy_usd) == (
            first.billed_usd,
            first.idle_usd,
            first.busy_usd,
        )


@EXAMPLES
@given(traffic(), st.data())
def test_window_excludes_rows_outside_it(t: Traffic, data: st.DataObject) -> None:
    """A since/until window counts only the rows inside it and bills its overlap with the run."""
    times = sorted({r.ts for r in t.requests} | {b.ts for b in t.batches})
    edge = st.one_of(st.sampled_from(times), st.floats(STARTED - 10, t.stopped + 10))
    since, until = sorted((data.draw(edge), data.draw(edge)))
    report = report_of(t, since=since, until=until)
    inside = [r for r in t.requests if since <= r.ts <= until]
    assert report.total.requests == len(inside)
    assert report.total.errors == sum(r.status >= 400 for r in inside)
    assert report.total.cost_usd == pytest.approx(math.fsum(r.cost_usd for r in inside), rel=1e-9)
    busy = math.fsum(t.pricer.batch_cost_usd(b.busy_s) for b in t.batches if since <= b.ts <= until)
    assert report.busy_usd == pytest.approx(busy, rel=1e-9)
    overlap = max(0.0, min(t.stopped, until) - max(STARTED, since))
    assert report.billed_usd == pytest.approx(t.pricer.billed_usd(overlap), rel=1e-9, abs=1e-12)


@EXAMPLES
@given(traffic())
def test_since_after_everything_is_empty(t: Traffic) -> None:
    """A window that starts after the run holds no requests, no cost and no bill."""
    report = report_of(t, since=t.stopped + 1)
    assert report.rows == []
    assert report.total.requests == 0 and report.total.cost_usd == 0.0
    assert report.billed_usd == 0.0 and report.idle_usd == 0.0


def test_missing_ledger_is_a_config_error(tmp_path: Path) -> None:
    """Reporting on a ledger file that does not exist names it and says to serve first."""
    with pytest.raises(ConfigError) as info:
        build_report(tmp_path / "absent.db")
    assert info.value.file == str(tmp_path / "absent.db")
    assert info.value.hint is not None and "frugal serve" in info.value.hint


def test_file_that_is_not_a_ledger_is_a_config_error(tmp_path: Path) -> None:
    """Reporting on a file that is not a frugal ledger says so instead of crashing."""
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(ConfigError, match="not a frugal ledger"):
        build_report(path)


async def test_report_of_a_real_server_run(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """A real server's ledger reports every request sent, its 4xx errors and what it charged."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    x, _ = digits
    rng = np.random.default_rng(7)
    bodies: list[bytes] = []
    for i in range(200):
        if i % 9 == 4:
            bodies.append(b'{"instances": [[1, 2, 3]]}')  # wrong width: 400
        elif i % 9 == 7:
            bodies.append(b"{not json")  # 400
        else:
            rows = x[rng.integers(0, len(x), size=int(rng.integers(1, 6)))]
            bodies.append(json.dumps({"instances": rows.tolist()}).encode())
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/endpoints/digits/predict", content=body) for body in bodies)
        )
    await asyncio.to_thread(server.__exit__)  # drain, flush the ledger, stamp the run's end

    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 400}
    charged = math.fsum(float(r.headers["x-frugal-cost-usd"]) for r in responses)
    report = build_report(tmp_path / "ledger.db")
    assert report.total.requests == len(bodies)
    assert report.total.errors == statuses.count(400)
    assert report.total.items == sum(
        len(r.json()["predictions"]) for r in responses if r.is_success
    )
    assert charged > 0
    assert report.total.cost_usd == pytest.approx(charged, rel=1e-6)  # headers carry 7 digits
    assert report.allocated_usd + report.idle_usd == pytest.approx(report.billed_usd, rel=0.01)
    assert report.allocated_usd == pytest.approx(report.busy_usd, rel=1e-9)
    assert 0 < report.allocated_usd < report.billed_usd


def test_unfinished_run_billed_to_now_if_alive_else_to_last_request(tmp_path: Path) -> None:
    """A run with no end is billed to now while its process lives, else to its last request."""
    import os
    import subprocess
    import sys
    import time

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    path = tmp_path / "ledger.db"
    started = time.time() - 3600
    for pid in (dead_pid, os.getpid()):
        ledger = SqliteLedger(path)
        ledger.open(instance="custom", price_usd_per_hour=3.6, slots=1)
        ledger.record(request_row(0, "e", "m:1", ts=started + 36, items=1, cost=0.0, status=200))
        ledger.flush_sync()
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE runs SET started = ?, pid = ? WHERE run_id = ?",
                       (started, pid, ledger.run_id))  # fmt: skip
        report = build_report(path)
        if pid == dead_pid:
            assert report.billed_usd == pytest.approx(3.6 / 3600 * 36)
            first = report.billed_usd
        else:
            assert report.billed_usd - first == pytest.approx(3.6, rel=0.01)
