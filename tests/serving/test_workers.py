"""``--workers auto``: one process per usable vCPU (affinity, cgroup quota), 1 on a GPU instance."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.cli import main
from frugal.errors import InvalidInput
from frugal.serving import parse_workers, resolve_workers
from frugal.serving.workers import MAX_WORKERS, cgroup_cpu_limit, usable_cpus
from tests.conftest import TEST_INSTANCE, ServerProcess, digits_config, write_config


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", "auto"), (" AUTO ", "auto"), ("1", 1), ("64", 64), (3, 3)]
)
def test_parse_workers_takes_numbers_and_auto(value: str | int, expected: int | str) -> None:
    """A whole number in 1..64, or auto in any case, is a valid --workers."""
    assert parse_workers(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "not in 1..64"), ("65", "not in 1..64"), ("-2", "not in 1..64"),
     ("two", "neither a number"), ("", "neither a number"), ("1.5", "neither a number")],
)  # fmt: skip
def test_parse_workers_refuses_the_rest_naming_the_flag(value: str, message: str) -> None:
    """Anything else is InvalidInput naming --workers, with a hint."""
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_workers(value)
    assert caught.value.field == "--workers"
    assert caught.value.hint is not None and "auto" in caught.value.hint


@pytest.mark.parametrize("value", ["0", "two", "65", "auto-ish"])
def test_cli_bad_workers_exit_2_naming_the_flag(value: str, tmp_path: Path) -> None:
    """`frugal serve --workers <bad>` is a usage error: exit 2, the flag named, nothing served."""
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "none.yaml"), "--workers", value])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output and "auto" in result.output


@pytest.mark.parametrize(
    ("v2", "cpus"),
    [("200000 100000\n", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5),
     ("max 100000\n", None), ("garbage", None), ("", None), ("0 100000", None)],
)  # fmt: skip
def test_cgroup_v2_cpu_max_is_parsed(tmp_path: Path, v2: str, cpus: float | None) -> None:
    """cpu.max's "<quota> <period>" is a CPU count; `max` or a malformed line is no limit."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(v2)
    assert cgroup_cpu_limit(cpu_max, tmp_path / "no-quota", tmp_path / "no-period") == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"), [("300000", "100000", 3.0), ("-1", "100000", None)]
)
def test_cgroup_v1_quota_is_read_without_v2(
    tmp_path: Path, quota: str, period: str, cpus: float | None
) -> None:
    """Without cpu.max, cgroup v1's cfs quota and period give the limit; a quota of -1 is none."""
    (tmp_path / "quota").write_text(quota + "\n")
    (tmp_path / "period").write_text(period + "\n")
    got = cgroup_cpu_limit(tmp_path / "absent", tmp_path / "quota", tmp_path / "period")
    assert got == cpus


def test_no_cgroup_files_is_no_limit(tmp_path: Path) -> None:
    """A machine without cgroup CPU files has no quota."""
    assert cgroup_cpu_limit(tmp_path / "a", tmp_path / "b", tmp_path / "c") is None


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(4, None, 4), (4, 2.0, 2), (4, 1.5, 2), (4, 0.5, 1), (2, 8.0, 2), (1, None, 1)],
)
def test_usable_cpus_is_affinity_capped_by_the_quota_rounded_up(
    affinity: int, quota: float | None, expected: int
) -> None:
    """The affinity mask's size, capped by ceil(quota), and never below one."""
    assert usable_cpus(affinity, quota, read_cgroup=False) == expected


def test_usable_cpus_reads_this_machine() -> None:
    """Without arguments it reads this process's affinity mask and cgroup, within both."""
    import os

    found = usable_cpus()
    assert 1 <= found <= len(os.sched_getaffinity(0))


def test_resolve_workers_auto() -> None:
    """auto is one process per usable vCPU, capped at 64, and 1 on a GPU instance."""
    assert resolve_workers("auto", cpus=3) == 3
    assert resolve_workers("auto", cpus=500) == MAX_WORKERS
    assert resolve_workers("auto", gpus=1, cpus=8) == 1
    assert resolve_workers("2", gpus=1) == 2  # a number is taken as given


def test_serve_workers_auto_runs_one_process_per_usable_cpu(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """`frugal serve --workers auto` serves from usable_cpus() processes, each its own ledger
    run priced at 1/N of the instance, and every answer has its row."""
    path = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    x, _ = digits
    with ServerProcess(path, "--workers", "auto", "--log-level", "info") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ids = []
            for row in x[:40]:
                r = client.post("/v1/endpoints/digits/predict", json={"instances": [row.tolist()]})
                assert r.status_code == 200
                ids.append(r.headers["x-request-id"])
    expected = usable_cpus()
    assert f"--workers auto: {expected} server process(es)" in server.log_text()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        prices = [r[0] for r in db.execute("SELECT price_usd_per_hour FROM runs")]
        rows = [r[0] for r in db.execute("SELECT request_id FROM requests WHERE shadow = 0")]
    assert len(prices) == expected
    full = TEST_INSTANCE["price_usd_per_hour"]
    assert all(price == pytest.approx(full / expected) for price in prices)
    assert sorted(rows) == sorted(ids)
