"""The recorder: one row per finished request, priced as the model's share plus the server's own
measured work, checked against the CPU the operating system counted for the server process."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.accounting import Pricer, SqliteLedger, build_report
from frugal.accounting.overhead import OverheadMeter, ThreadCpuClock
from frugal.config import parse_config
from frugal.observability import ServingMetrics
from frugal.serving import Finished, Recorder, build_engine
from frugal.serving.recorder import tier_costs
from frugal.types import BatchStats
from tests.conftest import ServerProcess, digits_config, sqlite_ledger, write_config

PRICER = Pricer(price_usd_per_hour=3.6, slots=2, cpus=2)  # $0.001 a second, $0.0005 a CPU-second


class Clock:
    """Wall and CPU seconds the test sets, for the meter's arithmetic (the OS's are below)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu_spent = 0.0

    def cpu(self) -> float:
        spent, self.cpu_spent = self.cpu_spent, 0.0
        return spent


@pytest.fixture
def booked(tmp_path: Path) -> Iterator[tuple[Recorder, Clock, SqliteLedger]]:
    clock = Clock()
    ledger = SqliteLedger(tmp_path / "ledger.db", flush_interval_ms=5)
    ledger.open(instance="test", price_usd_per_hour=3.6, slots=2)
    metrics = ServingMetrics(slots=2, price_usd_per_hour=3.6)
    meter = OverheadMeter(PRICER, clock.cpu, wall=lambda: clock.wall)
    yield Recorder(PRICER, ledger, metrics, meter=meter), clock, ledger
    ledger.close()


def rows(ledger: SqliteLedger) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger.path) as db:
        return db.execute(
            "SELECT request_id, cost_usd, model_usd, overhead_usd, shadow FROM requests "
            "ORDER BY request_id"
        ).fetchall()


def finished(request_id: str, usd: float = 0.0, **fields: Any) -> Finished:
    return Finished("e", "m:1", request_id, time.monotonic(), 200, upstream_usd=usd, **fields)


async def test_an_interval_s_cpu_is_priced_and_shared_by_its_requests(
    booked: tuple[Recorder, Clock, SqliteLedger],
) -> None:
    """0.4 CPU-seconds in a 1 s interval cost $0.0002, shared by the 4 requests it answered."""
    recorder, clock, ledger = booked
    for i in range(4):
        assert recorder.finish(finished(f"r{i}", usd=1e-6)) == pytest.approx(1e-6)
    clock.wall, clock.cpu_spent = 1.0, 0.4
    recorder.close_interval()
    # The next answer's header carries the share measured in the interval before.
    assert recorder.finish(finished("r4", usd=1e-6)) == pytest.approx(1e-6 + 5e-5)
    await recorder.flush()
    booked_rows = rows(ledger)
    for _, cost, model, overhead, _ in booked_rows[:4]:
        assert (model, overhead) == (pytest.approx(1e-6), pytest.approx(5e-5))
        assert cost == model + overhead
    assert booked_rows[4][3] == 0.0  # its own interval measured no CPU


async def test_overhead_never_exceeds_what_the_model_left_of_the_bill(
    booked: tuple[Recorder, Clock, SqliteLedger],
) -> None:
    """When batches held both slots for the whole interval, the server's work rode in their
    time: model + overhead stay within billed, so idle is never negative."""
    recorder, clock, ledger = booked
    recorder.batch(BatchStats("m:1", 4, "full", time.time(), 1.0,
                              PRICER.item_cost_usd(1.0, 4), (0.0,) * 4, 0))  # fmt: skip
    recorder.batch(BatchStats("m:1", 4, "full", time.time(), 1.0,
                              PRICER.item_cost_usd(1.0, 4), (0.0,) * 4, 0))  # fmt: skip
    recorder.finish(finished("a"))
    clock.wall, clock.cpu_spent = 1.0, 0.5
    await recorder.flush()
    [(_, _, _, overhead, _)] = rows(ledger)
    assert overhead == pytest.approx(0.0, abs=1e-15)


async def test_shadow_copies_take_no_share_and_charge_no_budget(
    booked: tuple[Recorder, Clock, SqliteLedger],
) -> None:
    """A shadow row keeps its model dollars and no overhead; the answered request gets it all."""
    recorder, clock, ledger = booked
    recorder.finish(finished("answer", usd=2e-6))
    recorder.finish(finished("shadow", usd=3e-6, shadow=True))
    clock.wall, clock.cpu_spent = 1.0, 0.2
    await recorder.flush()
    by_id = {r[0]: r for r in rows(ledger)}
    assert by_id["answer"][3] == pytest.approx(1e-4)
    assert by_id["shadow"][1:4] == (pytest.approx(3e-6), pytest.approx(3e-6), 0.0)


def two_version_cascade(model_file: Path, tmp_path: Path) -> dict[str, Any]:
    """Endpoint ``both``: digits version 1 keeps what it is sure of, version 2 the rest."""
    data = digits_config(model_file, tmp_path)
    data["models"].append(dict(data["models"][0], version="2"))
    cascade = [{"model": "digits:1", "accept": {"confidence": ">= 0.99"}}, {"model": "digits:2"}]
    data["endpoints"] = [{"name": "both", "route": {"cascade": cascade}}]
    return data


async def test_a_cascaded_request_keeps_each_tier_s_dollars(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """tier_costs lists the model dollars of every version that ran the request's items."""
    engine = build_engine(parse_config(two_version_cascade(digits_model_file, tmp_path)))
    x, _ = digits
    try:
        answer = await engine.predict(engine.endpoint("both"), [r.tolist() for r in x[1500:1540]],
                                      deadline=time.monotonic() + 30)  # fmt: skip
    finally:
        await engine.drain()
        sqlite_ledger(engine).close()
    text = tier_costs(Finished("both", "digits:2", "r", 0.0, 200, outcomes=answer.outcomes))
    small, large = [part.split("=") for part in text.split(";")]
    assert (small[0], large[0]) == ("digits:1", "digits:2")
    assert float(small[1]) + float(large[1]) == pytest.approx(answer.cost_usd)
    assert tier_costs(Finished("both", "digits:1", "r", 0.0, 200, outcomes=answer.outcomes[:0]))\
        == ""  # fmt: skip


def test_the_thread_clock_counts_the_server_s_threads_and_not_the_model_s() -> None:
    """CPU burnt in a model slot thread is not overhead; CPU burnt in any other thread is."""

    def burn(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    clock = ThreadCpuClock()
    clock()
    model = threading.Thread(target=burn, args=(0.3,), name="frugal-slot_0")
    model.start()
    model.join()
    assert clock() < 0.15  # the model's 0.3 s are not counted (this thread idled meanwhile)
    burned, release = threading.Event(), threading.Event()

    def server_work() -> None:
        burn(0.3)
        burned.set()
        release.wait()  # stay alive until counted: a thread's clock ends with it

    server = threading.Thread(target=server_work, name="frugal-ledger")
    server.start()
    assert burned.wait(timeout=30)
    counted = clock()
    release.set()
    server.join()
    assert counted >= 0.3


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, as the kernel counts them (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_utilization_matches_the_process_cpu_the_os_reports(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """Under a steady load, the report's utilization (model + overhead over billed) tracks the
    CPU the kernel counted for the server process over the same window, divided by its CPUs
    (it used to book the server's own work as idle: 11% reported on a half-busy machine)."""
    config = digits_config(digits_model_file, tmp_path)
    path = write_config(tmp_path, config)
    x, _ = digits
    bodies = [{"instances": [r.tolist()]} for r in x[:200]]
    with ServerProcess(path) as server:
        assert server.process is not None
        pid = server.process.pid

        async def load(seconds: float) -> int:
            sent = 0
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def worker(k: int) -> None:
                    nonlocal sent
                    while time.monotonic() < end:
                        r = await client.post("/v1/endpoints/digits/predict", json=bodies[k])
                        assert r.status_code == 200
                        sent += 1

                end = time.monotonic() + seconds
                await asyncio.gather(*(worker(k) for k in range(8)))
            return sent

        asyncio.run(load(0.5))  # warm
        cpu0, t0 = process_cpu_s(pid), time.time()
        sent = asyncio.run(load(3.0))
        cpu1, t1 = process_cpu_s(pid), time.time()
    report = build_report(tmp_path / "ledger.db", since=t0, until=t1)
    cpus = os.cpu_count() or 1
    measured = (cpu1 - cpu0) / ((t1 - t0) * cpus)
    assert sent > 100 and measured > 0.05
    reported = report.utilization
    print(
        f"utilization reported {reported:.3f}, OS {measured:.3f}; model ${report.model_usd:.3g},"
        f" overhead ${report.overhead_usd:.3g}, {sent} requests"
    )
    assert report.overhead_usd > 0
    assert math.isclose(reported, measured, rel_tol=0.2), (reported, measured)
    assert np.isclose(report.overhead_usd + report.model_usd, report.allocated_usd)


async def test_report_by_version_charges_each_cascade_tier_what_its_batches_cost(
    serve: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """Through a real server, a cascade's rows carry each tier's dollars, so `frugal report
    --by version` charges the small and the large version what their own batches cost."""
    server = serve(parse_config(two_version_cascade(digits_model_file, tmp_path)))
    x, _ = digits
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        answers = await asyncio.gather(*(
            client.post("/v1/endpoints/both/predict", json={"instances": [r.tolist()]})
            for r in x[1500:1600]
        ))  # fmt: skip
    assert all(a.status_code == 200 for a in answers)
    await asyncio.to_thread(server.__exit__)  # drain: every row and batch is in the ledger
    ledger = tmp_path / "ledger.db"
    with sqlite3.connect(ledger) as db:
        batch_usd = dict(db.execute("SELECT version, SUM(cost_usd) FROM batches GROUP BY version"))
        escalated = db.execute("SELECT COUNT(*) FROM requests WHERE tier_costs != ''").fetchone()
    assert escalated[0] > 0  # some items went on to the large version
    rows = {r.key: r for r in build_report(ledger, by="version").rows}
    for version in ("1", "2"):
        assert rows[f"digits:{version}"].model_usd == pytest.approx(batch_usd[version], rel=1e-9)
