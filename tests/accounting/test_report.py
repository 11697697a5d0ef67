"""Reports reconcile: start-up + model + overhead + idle = billed, every grouping adds up to the
ledger's rows, and a cascade's model dollars go to each tier it ran on."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import tempfile
import time
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
from frugal.accounting.report import resolve_window
from frugal.accounting.tier_costs import format_tier_costs
from frugal.config import parse_config
from frugal.errors import ConfigError, InvalidInput
from tests.conftest import digits_config

STARTED = 1_700_000_000.0
# Which endpoints serve each model version; two endpoints share m:2.
ENDPOINTS = {"m:1": ["alpha"], "m:2": ["beta", "gamma"], "n:1": ["delta"]}
_Item = tuple[float, float, bool, int]  # when it was done, its cost, failed, its batch's size


@dataclass(frozen=True)
class Traffic:
    """What one run served, with the timestamps and costs the server would have written."""

    pricer: Pricer
    ready: float  # start-up was [STARTED, ready]
    stopped: float
    batches: list[BatchRow]
    requests: list[LedgerRow]

    @property
    def billed_usd(self) -> float:
        return self.pricer.billed_usd(self.stopped - STARTED)

    @property
    def startup_usd(self) -> float:
        return self.pricer.billed_usd(self.ready - STARTED)


@st.composite
def traffic(draw: st.DrawFn) -> Traffic:
    """After a start-up, batches one after another with idle gaps; their items grouped into
    requests of 1-5 items, some of them cascades over two versions.

    A request's items come from consecutive batches of one model version, as the batcher splits
    a request that does not fit; a cascade's row is filed under the version that answered, with
    each version's model dollars in tier_costs. Failed items still cost their share, and some
    requests are refused before reaching a batch (no items, no model cost). Most requests carry
    some overhead (the server's own work), which is not busy slot time.
    """
    pricer = Pricer(price_usd_per_hour=draw(st.floats(0.005, 100.0)), slots=draw(st.integers(1, 8)))
    rnd = draw(st.randoms(use_true_random=False))  # the many small choices, cheaply
    n_batches = draw(st.integers(1, 20))
    ready = now = STARTED + draw(st.floats(0.0, 30.0))
    batches: list[BatchRow] = []
    items_by_model: dict[str, list[_Item]] = {k: [] for k in ENDPOINTS}
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
    chunks: list[tuple[str, list[_Item]]] = []
    for key, items in items_by_model.items():
        while items:
            n = rnd.randint(1, 5)
            chunks.append((key, items[:n]))
            items = items[n:]
    rnd.shuffle(chunks)

    def overhead() -> float:  # up to a millisecond of the machine, or none
        return rnd.choice([0.0, rnd.random() * pricer.price_usd_per_second * 1e-3])

    requests: list[LedgerRow] = []
    while chunks:
        tiers = [chunks.pop()]
        other = next((i for i, (k, _) in enumerate(chunks) if k != tiers[0][0]), None)
        if other is not None and rnd.random() < 0.3:
            tiers.insert(0, chunks.pop(other))  # a cheaper tier ran first; the last one answered
        key, answered = tiers[-1]
        every = [item for _, taken in tiers for item in taken]
        per_tier = [(k, math.fsum(cost for _, cost, _, _ in taken)) for k, taken in tiers]
        requests.append(
            request_row(
                len(requests),
                rnd.choice(ENDPOINTS[key]),
                key,
                ts=max(ts for ts, _, _, _ in every),
                items=len(tiers[0][1]),
                cost=math.fsum(cost for _, cost, _, _ in every),  # as Engine sums outcomes
                status=500 if all(failed for _, _, failed, _ in answered) else 200,
                batch_size=sum(size for _, _, _, size in every) / len(every),
                overhead=overhead(),
                tier_costs=format_tier_costs(per_tier) if len(tiers) > 1 else "",
            )
        )
    for ts, status in refused:
        key = rnd.choice(sorted(ENDPOINTS))
        endpoint = rnd.choice(ENDPOINTS[key])
        requests.append(
            request_row(
                len(requests), endpoint, key, ts=ts, items=0, cost=0.0, status=status,
                overhead=overhead(),
            )
        )  # fmt: skip
    return Traffic(pricer, ready, stopped, batches, requests)


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
    overhead: float = 0.0,
    tier_costs: str = "",
) -> LedgerRow:
    """A request row whose ``cost`` is its model share; overhead adds to its cost_usd."""
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
        cost_usd=cost + overhead,
        status=status,
        model_usd=cost,
        overhead_usd=overhead,
        tier_costs=tier_costs,
    )


def write_ledger(path: Path, t: Traffic) -> None:
    """Record the traffic through SqliteLedger from its start-up to its stop."""
    ledger = SqliteLedger(path)
    ledger.open(
        instance="custom",
        price_usd_per_hour=t.pricer.price_usd_per_hour,
        slots=t.pricer.slots,
        started_at=STARTED,
    )
    ledger.mark_ready(at=t.ready)
    for batch in t.batches:
        ledger.record_batch(batch)
    for row in t.requests:
        ledger.record(row)
    ledger.close()
    with closing(sqlite3.connect(path)) as db, db:  # close() stamped now: the run ended earlier
        db.execute("UPDATE runs SET stopped = ? WHERE run_id = ?", (t.stopped, ledger.run_id))


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


def assert_parts_add_up(report: Report) -> None:
    """billed = start-up + model + overhead + unmatched + idle, to the float."""
    parts = [report.startup_usd, report.model_usd, report.overhead_usd, report.unmatched_usd,
             report.idle_usd]  # fmt: skip
    assert math.fsum(parts) == pytest.approx(report.billed_usd, rel=1e-12, abs=1e-15)
    assert report.allocated_usd == pytest.approx(
        report.model_usd + report.overhead_usd, rel=1e-12, abs=1e-18
    )


EXAMPLES = settings(max_examples=40, deadline=None)


def busy_usd(t: Traffic, key: str | None = None, since: float = 0.0, until: float = 1e12) -> float:
    """The batches' busy time priced: of one model version, in a window."""
    return math.fsum(
        t.pricer.batch_cost_usd(b.busy_s)
        for b in t.batches
        if since <= b.ts <= until and key in (None, f"{b.model}:{b.version}")
    )


@EXAMPLES
@given(traffic())
def test_parts_add_up_to_billed(t: Traffic) -> None:
    """Over a whole run, start-up + model + overhead + idle = billed, each part as generated."""
    report = report_of(t)
    assert report.billed_usd == pytest.approx(t.billed_usd, rel=1e-9)
    assert report.startup_usd == pytest.approx(t.startup_usd, rel=1e-9, abs=1e-15)
    # Every batch's busy time is shared out to its items' requests, to the float.
    busy = busy_usd(t)
    assert report.busy_usd == pytest.approx(busy, rel=1e-9)
    assert report.model_usd == pytest.approx(busy, rel=1e-9)
    assert report.unmatched_usd == pytest.approx(0.0, abs=1e-9 * busy)
    overhead = math.fsum(r.overhead_usd for r in t.requests)
    assert report.overhead_usd == pytest.approx(overhead, rel=1e-9, abs=1e-18)
    assert report.idle_usd == pytest.approx(
        t.billed_usd - t.startup_usd - busy - overhead, rel=1e-9, abs=1e-12
    )
    assert_parts_add_up(report)
    assert report.utilization == pytest.approx(report.allocated_usd / report.billed_usd)
    # Batches run one at a time after start-up, so never busier than the rest of the bill
    # (timestamps near 1.7e9 s carry about 1e-7 s of rounding each).
    assert report.idle_usd + overhead >= -t.pricer.billed_usd(1e-6 * len(t.batches))


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
        for part in ("cost_usd", "model_usd", "overhead_usd"):
            in_rows = math.fsum(getattr(r, part) for r in rows)
            assert in_rows == pytest.approx(getattr(total, part), rel=1e-9, abs=1e-18), (by, part)
        assert total.cost_usd == pytest.approx(expected_cost, rel=1e-9)
        assert report.allocated_usd == total.cost_usd
        for row in rows:
            assert row.cost_usd == pytest.approx(row.model_usd + row.overhead_usd, rel=1e-12)
    endpoint_keys = {r.key for r in reports["endpoint"].rows}
    assert endpoint_keys == {r.endpoint for r in t.requests}
    ran = {f"{b.model}:{b.version}" for b in t.batches}
    answered = {f"{r.model}:{r.version}" for r in t.requests}
    assert {r.key for r in reports["version"].rows} == ran | answered
    assert {r.key for r in reports["model"].rows} == {k.partition(":")[0] for k in ran | answered}
    for row in reports["endpoint"].rows:
        mine = [r for r in t.requests if r.endpoint == row.key]
        assert row.requests == len(mine)
        assert row.cost_usd == pytest.approx(math.fsum(r.cost_usd for r in mine), rel=1e-9)
    first, *others = reports.values()
    for other in others:
        assert (other.billed_usd, other.idle_usd, other.busy_usd, other.startup_usd) == (
            first.billed_usd,
            first.idle_usd,
            first.busy_usd,
            first.startup_usd,
        )


@EXAMPLES
@given(traffic())
def test_by_version_charges_each_tier_what_it_ran(t: Traffic) -> None:
    """By version, a cascade's model dollars go to every tier that ran its items, so each
    version's model dollars are its own batches' busy time; requests and overhead stay with the
    version that answered."""
    reports, _ = reports_of(t)
    for row in reports["version"].rows:
        answered = [r for r in t.requests if f"{r.model}:{r.version}" == row.key]
        assert row.model_usd == pytest.approx(busy_usd(t, row.key), rel=1e-9, abs=1e-18)
        assert row.requests == len(answered)
        assert row.overhead_usd == pytest.approx(
            math.fsum(r.overhead_usd for r in answered), rel=1e-9, abs=1e-18
        )
    for row in reports["model"].rows:
        versions = [k for k in ENDPOINTS if k.partition(":")[0] == row.key]
        expected = math.fsum(busy_usd(t, k) for k in versions)
        assert row.model_usd == pytest.approx(expected, rel=1e-9, abs=1e-18)


@EXAMPLES
@given(traffic(), st.data())
def test_window_excludes_rows_outside_it(t: Traffic, data: st.DataObject) -> None:
    """A since/until window counts only the rows inside it, bills its overlap with the run and
    its start-up, and its parts still add up to its bill."""
    times = sorted({r.ts for r in t.requests} | {b.ts for b in t.batches} | {t.ready})
    edge = st.one_of(st.sampled_from(times), st.floats(STARTED - 10, t.stopped + 10))
    since, until = sorted((data.draw(edge), data.draw(edge)))
    report = report_of(t, since=since, until=until)
    inside = [r for r in t.requests if since <= r.ts <= until]
    assert report.total.requests == len(inside)
    assert report.total.errors == sum(r.status >= 400 for r in inside)
    assert report.total.cost_usd == pytest.approx(math.fsum(r.cost_usd for r in inside), rel=1e-9)
    model = math.fsum(r.model_usd for r in inside)
    assert report.model_usd == pytest.approx(model, rel=1e-9, abs=1e-18)
    assert report.busy_usd == pytest.approx(busy_usd(t, None, since, until), rel=1e-9)
    assert report.unmatched_usd == pytest.approx(report.busy_usd - model, rel=1e-9, abs=1e-15)
    overlap = max(0.0, min(t.stopped, until) - max(STARTED, since))
    assert report.billed_usd == pytest.approx(t.pricer.billed_usd(overlap), rel=1e-9, abs=1e-12)
    startup = max(0.0, min(t.ready, until) - max(STARTED, since))
    assert report.startup_usd == pytest.approx(t.pricer.billed_usd(startup), rel=1e-9, abs=1e-12)
    assert_parts_add_up(report)


@EXAMPLES
@given(traffic())
def test_since_after_everything_is_empty(t: Traffic) -> None:
    """A window that starts after the run holds no requests, no cost and no bill."""
    report = report_of(t, since=t.stopped + 1)
    assert report.rows == []
    assert report.total.requests == 0 and report.total.cost_usd == 0.0
    assert report.billed_usd == 0.0 and report.idle_usd == 0.0 and report.startup_usd == 0.0


def test_a_cascade_by_model_splits_its_model_dollars(tmp_path: Path) -> None:
    """A request the large tier answered after the small one ran it: by model, each tier gets
    its dollars; the request, its latency and its overhead stay with the large model."""
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=3.6, slots=1)
    ledger.mark_ready()
    now = time.time()
    alone = request_row(0, "digits", "small:1", ts=now, items=1, cost=1e-6, status=200,
                        overhead=2e-7)  # fmt: skip
    cascade = request_row(1, "digits", "large:1", ts=now, items=1, cost=1e-6 + 8e-6, status=200,
                          overhead=3e-7, tier_costs="small:1=1e-06;large:1=8e-06")  # fmt: skip
    ledger.record(alone)
    ledger.record(cascade)
    ledger.close()
    rows = {r.key: r for r in build_report(path, by="model").rows}
    assert rows["small"].requests == 1 and rows["large"].requests == 1
    assert rows["small"].model_usd == pytest.approx(2e-6)  # its own request and its tier's run
    assert rows["small"].overhead_usd == pytest.approx(2e-7)
    assert rows["large"].model_usd == pytest.approx(8e-6)
    assert rows["large"].overhead_usd == pytest.approx(3e-7)
    assert rows["large"].p50_ms == cascade.latency_ms
    (endpoint,) = build_report(path, by="endpoint").rows
    assert endpoint.model_usd == pytest.approx(1e-5) and endpoint.requests == 2


def test_unparseable_tier_costs_is_a_config_error(tmp_path: Path) -> None:
    """A tier_costs value that does not parse stops the report with an error naming the file."""
    path = tmp_path / "ledger.db"
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=3.6, slots=1)
    ledger.record(request_row(0, "e", "m:1", ts=time.time(), items=1, cost=1e-6, status=200,
                              tier_costs="m:1=lots"))  # fmt: skip
    ledger.close()
    with pytest.raises(ConfigError, match="not a frugal ledger") as info:
        build_report(path, by="model")
    assert info.value.file == str(path)
    assert build_report(path, by="endpoint").total.requests == 1  # not read by endpoint


def test_window_errors_name_the_field(tmp_path: Path) -> None:
    """A window that starts in the future, or ends before it starts, is an InvalidInput naming
    the field; an end in the future is read as now."""
    now = 1_800_000_000.0
    with pytest.raises(InvalidInput, match=r"since .* is in the future") as info:
        resolve_window(now + 1, None, now=now)
    assert info.value.field == "since"
    with pytest.raises(InvalidInput, match=r"--until .* is before --since") as info:
        resolve_window(now - 10, now - 20, now=now, names=("--since", "--until"))
    assert info.value.field == "--until"
    assert resolve_window(now - 10, now + 3600, now=now) == (now - 10, now)
    assert resolve_window(None, None, now=now) == (0.0, now)
    assert resolve_window(now, now, now=now) == (now, now)  # empty, not an error
    with pytest.raises(InvalidInput, match="in the future"):
        build_report(tmp_path / "absent.db", since=time.time() + 3600)


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
    # Each answer's header is its model share plus the overhead per request of the interval
    # before; its row has the same model share and the overhead measured in its own interval.
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = {rid: (cost, model, overhead) for rid, cost, model, overhead in db.execute(
            "SELECT request_id, cost_usd, model_usd, overhead_usd FROM requests")}  # fmt: skip
    for response in responses:
        cost, model, overhead = rows[response.headers["x-request-id"]]
        assert cost == pytest.approx(model + overhead, rel=1e-12)
        assert float(response.headers["x-frugal-cost-usd"]) >= model * (1 - 1e-6)  # 7 digits
    assert report.overhead_usd > 0  # the server's own CPU was measured and priced
    assert report.total.cost_usd == pytest.approx(report.model_usd + report.overhead_usd)
    assert report.model_usd == pytest.approx(report.busy_usd, rel=1e-9)
    assert_parts_add_up(report)
    assert 0 < report.allocated_usd < report.billed_usd
    # Start-up (loading the model, warming up) is billed and shown apart.
    assert 0 < report.startup_usd < report.billed_usd
