"""`frugal demo`, the README's first command, against real server processes."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from frugal.accounting import Report, build_report
from frugal.cli import main
from frugal.demo import RUNS

N = 200  # requests a run: enough for batches and cache hits, small enough for a 2-core machine
LEVER = re.compile(
    r"^  (?P<lever>.+): (?P<billed>[\d.]+)x (?P<billed_way>cheaper|more expensive) than the "
    r"naive baseline \(billed \$/1k; allocated (?P<alloc>[\d.]+)x "
    r"(?P<alloc_way>cheaper|more expensive)\) at (?P<acc>[\d.]+)% accuracy "
    r"\(baseline (?P<base_acc>[\d.]+)%\)(?P<note>.*)$"
)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One demo with small runs; the tests below read its output and its files."""
    workdir = tmp_path_factory.mktemp("demo")
    args = ["demo", "--requests", str(N), "--connections", "8", "--workdir", str(workdir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output, workdir


def reports(workdir: Path) -> dict[str, Report]:
    """Each run's ledger over the measured window the demo wrote to runs.json."""
    runs = json.loads((workdir / "runs.json").read_text())["runs"]
    return {
        r["name"]: build_report(workdir / r["ledger"], since=r["since"], until=r["until"])
        for r in runs
    }


def per_1k(usd: float) -> float:
    return 1000 * usd / N


def test_every_run_has_its_ledger_with_every_request_and_its_overhead(
    demo_run: tuple[str, Path],
) -> None:
    """Six runs, each with a ledger holding exactly the measured requests, none failed, each
    with the server's own work priced; batching, caches and the cascade did what they say."""
    _, workdir = demo_run
    by_run = reports(workdir)
    assert list(by_run) == [run.name for run in RUNS] and len(RUNS) == 6
    for name, report in by_run.items():
        assert report.total.requests == N and report.total.errors == 0, name
        assert report.overhead_usd > 0 and report.model_usd > 0 and report.billed_usd > 0, name
        assert report.startup_usd == 0, name  # the window opens after the server was ready
    assert by_run["baseline"].total.mean_batch_size == 1.0
    assert by_run["batching"].total.mean_batch_size >= 1.0
    for name in ("cache", "all"):
        assert by_run[name].total.cache_hit_ratio > 0.2  # Zipf(1.1) repeats popular images
        assert by_run[name].total.saved_usd > 0
    for name in ("baseline", "batching", "small", "cascade"):
        assert by_run[name].total.cache_hit_ratio == 0.0
    # The baseline and batching serve the large model; right-sizing the small one alone.
    for name, model in (("baseline", "digits-large"), ("batching", "digits-large"),
                        ("small", "digits-small")):  # fmt: skip
        with sqlite3.connect(workdir / f"ledger-{name}.db") as db:
            models = {m for (m,) in db.execute("SELECT DISTINCT model FROM requests")}
        assert models == {model}, name
    # The cascade's threshold came from calibration on held-out digits: a confidence in (0, 1].
    settings = yaml.safe_load((workdir / "frugal-cascade.yaml").read_text())
    route = next(e for e in settings["endpoints"] if e["name"] == "digits-cascade")["route"]
    op, threshold = route["cascade"][0]["accept"]["confidence"].split()
    assert op == ">=" and 0 < float(threshold) <= 1
    with sqlite3.connect(workdir / "ledger-cascade.db") as db:
        routes = [r for (r,) in db.execute("SELECT route FROM requests WHERE status = 200")]
    assert routes and all(r.startswith("digits-small:1*") for r in routes)


def test_the_table_prints_each_ledger_s_dollars(demo_run: tuple[str, Path]) -> None:
    """Each row's requests, batch, hits and $/1k as model, overhead and billed are its ledger's
    over the run's window, and the line under the table says what billed covers."""
    output, workdir = demo_run
    by_run = reports(workdir)
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 12:
            rows[cells[0]] = cells
    for run in RUNS:
        total, report = by_run[run.name].total, by_run[run.name]
        cells = rows[run.label]
        assert cells[1:3] == [str(N), "0"]
        assert cells[6:8] == [f"{total.mean_batch_size:.1f}", f"{100 * total.cache_hit_ratio:.0f}%"]
        dollars = (report.model_usd, report.overhead_usd, report.billed_usd)
        assert cells[9:] == [f"{per_1k(usd):.2e}" for usd in dollars]
    assert "billed: the instance's price x the run's measured window" in output
    assert "start-up, warm-up and the idle after it excluded" in output


def test_the_ending_says_per_lever_what_it_saves_against_the_baseline(
    demo_run: tuple[str, Path],
) -> None:
    """One line per lever names the naive baseline; its billed and allocated ratios are the
    ledgers' to the printed digits, and its accuracy stands next to the baseline's."""
    output, workdir = demo_run
    by_run = reports(workdir)
    accuracy = {
        r["name"]: r["accuracy"] for r in json.loads((workdir / "runs.json").read_text())["runs"]
    }
    lines = [m for m in map(LEVER.match, output.splitlines()) if m is not None]
    assert [m["lever"] for m in lines] == [run.lever for run in RUNS[1:]]
    base = by_run["baseline"]
    for run, match in zip(RUNS[1:], lines, strict=True):
        report = by_run[run.name]
        compared = ((match["billed"], match["billed_way"], "billed_usd"),
                    (match["alloc"], match["alloc_way"], "allocated_usd"))  # fmt: skip
        for printed, way, part in compared:
            ratio = getattr(base, part) / getattr(report, part)
            expected = ratio if way == "cheaper" else 1 / ratio
            assert (way == "cheaper") == (ratio >= 1), run.name
            decimals = len(printed.partition(".")[2])
            assert abs(float(printed) - expected) <= 0.5 * 10**-decimals + 1e-9, run.name
        assert match["acc"] == f"{100 * accuracy[run.name]:.1f}"
        assert match["base_acc"] == f"{100 * accuracy['baseline']:.1f}"
        if accuracy[run.name] < accuracy["baseline"] - 0.0005:
            assert "points less accurate" in match["note"], run.name
    assert "each lever against the naive baseline (the large model only, batch 1, no cache)" in (
        output
    )


def test_help_says_how_many_runs() -> None:
    """`--help` names the six runs, the baseline first, and what the dollars are."""
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "Six runs" in result.output
    assert "naive baseline: the large model only, max_batch_size 1, no cache" in result.output
    assert "billed" in result.output and "overhead" in result.output


def test_too_few_requests_is_a_usage_error(tmp_path: Path) -> None:
    """`--requests 5` is refused before anything is trained, naming the option (exit 2)."""
    result = CliRunner().invoke(main, ["demo", "--requests", "5", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "--requests" in result.output
    assert list(tmp_path.iterdir()) == []
