"""`frugal profile --http --rates`: Poisson arrivals against a real `frugal serve`, and the
profile JSON's open-loop section (written, read back, old files without it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.errors import InvalidInput
from frugal.optimize import HttpProfile
from frugal.optimize.open_loop import poisson_arrivals
from frugal.optimize.profiles import read_profile
from tests.optimize.profiles import CPU, end_to_end, level, write

FAST = ("--batch-sizes", "1,4", "--warmup", "1", "--min-repeats", "3", "--min-seconds", "0")
OPEN_KEYS = {"rate_per_s", "seconds", "requests", "errors", "req_per_s", "p50_ms", "p99_ms",
             "mean_ms", "p50_ms_from_send", "p99_ms_from_send", "send_lag_p99_ms",
             "server_cpu_s_per_request", "server_cores_busy",
             "client_cpu_s_per_request"}  # fmt: skip


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def open_entry(rate: float, **overrides: Any) -> dict[str, Any]:
    entry = {"rate_per_s": rate, "seconds": 5.0, "requests": int(rate * 5), "errors": 0,
             "req_per_s": rate, "p50_ms": 2.0, "p99_ms": 20.0, "mean_ms": 3.0,
             "p50_ms_from_send": 1.5, "p99_ms_from_send": 15.0, "send_lag_p99_ms": 5.0,
             "server_cpu_s_per_request": 0.0009, "server_cores_busy": rate * 0.0009,
             "client_cpu_s_per_request": 0.0002}  # fmt: skip
    return {**entry, **overrides}


def test_open_loop_levels_of_a_real_server(models_dir: Path, tmp_path: Path) -> None:
    """Each --rates level sends Poisson arrivals to the served model and records what came
    back: answers, latency from schedule and from send, the server's CPU per request."""
    out = tmp_path / "p.json"
    result = invoke("profile", str(models_dir / "digits-lr.joblib"), *FAST, "--http",
                    "--concurrency", "1", "--seconds", "0.5", "--rates", "40,20",
                    "--device", "cpu", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "open loop: Poisson arrivals" in result.output
    levels = json.loads(out.read_text())["http"]["open_loop"]
    assert [lv["rate_per_s"] for lv in levels] == [20, 40]
    for lv in levels:
        assert set(lv) == OPEN_KEYS
        assert lv["requests"] > 0 and lv["errors"] == 0
        assert lv["server_cpu_s_per_request"] > 0
        assert lv["p50_ms"] <= lv["p99_ms"] and lv["p50_ms_from_send"] <= lv["p50_ms"]
    record = read_profile(out)
    assert record.http is not None
    assert [lv.rate_per_s for lv in record.http.open_levels] == [20, 40]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "--rates", "a,b"], "a comma list of requests per second"),
        (["--http", "--rates", "0,10"], "rates are requests per second, > 0"),
        (["--rates", "10"], "--rates drives the server open loop: give --http too"),
    ],
)
def test_rates_are_checked(args: list[str], message: str, models_dir: Path, tmp_path: Path) -> None:
    """Bad --rates, or --rates without --http, exit 2 before any server starts."""
    out = tmp_path / "p.json"
    result = invoke("profile", str(models_dir / "digits-lr.joblib"), *FAST, *args,
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()


def test_the_open_loop_section_round_trips(tmp_path: Path) -> None:
    """Written and read back, the open-loop levels are the same, sorted by rate; a section
    without them (a profile from before --rates) reads with none and writes none."""
    data = end_to_end(CPU, level(1, 500, 4.0, 0.8))
    data["http"]["open_loop"] = [open_entry(200), open_entry(50)]
    http = HttpProfile.from_dict(data["http"])
    assert [lv.rate_per_s for lv in http.open_levels] == [50, 200]
    again = HttpProfile.from_dict(json.loads(json.dumps(http.to_dict())))
    assert again.open_levels == http.open_levels  # (closed levels are rounded to 4 digits)
    old = HttpProfile.from_dict(end_to_end(CPU, level(1, 500, 4.0, 0.8))["http"])
    assert old.open_levels == () and "open_loop" not in old.to_dict()
    record = read_profile(write(tmp_path / "p.json", data))
    assert record.http is not None and record.http.open_levels == http.open_levels


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (open_entry(0), "http.open_loop[0].rate_per_s must be > 0"),
        (open_entry(10, p99_ms_from_send=-1), "http.open_loop[0].p99_ms_from_send must be"),
        ({"rate_per_s": 10}, "missing key 'seconds'"),
    ],
)
def test_a_bad_open_loop_section_exits_2(
    entry: dict[str, Any], message: str, tmp_path: Path
) -> None:
    """A malformed open-loop level is refused naming the file and the field."""
    data = end_to_end(CPU, level(1, 500, 4.0, 0.8))
    data["http"]["open_loop"] = [entry]
    path = write(tmp_path / "bad.json", data)
    result = invoke("plan", "--profile", str(path), "--qps", "10", "--slo-ms", "50")
    assert result.exit_code == 2, result.output
    assert "malformed profile" in result.output and message in result.output


def test_poisson_arrivals_are_sorted_seeded_and_at_the_rate() -> None:
    """Arrivals lie in [0, seconds), ascend, repeat for a seed, and their count is the rate's
    (within 5 standard deviations of a Poisson count)."""
    t = poisson_arrivals(200, 50, seed=3)
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] < 50
    assert np.array_equal(t, poisson_arrivals(200, 50, seed=3))
    assert abs(t.size - 10_000) < 5 * 100
    with pytest.raises(InvalidInput, match="rate must be > 0"):
        poisson_arrivals(0, 1)
