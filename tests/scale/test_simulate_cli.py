"""`frugal simulate` and `frugal simulate trace` from the command line: the table, the JSON,
the config's settings, and exit 2 with the flag named for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from frugal.cli import main
from tests.conftest import digits_config, write_config

PROFILE = Path(__file__).parents[2] / "examples" / "cost-gate" / "profiles" / "digits.json"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    result = invoke("simulate", "trace", "--shape", "spiky", "--rate", "300", "--duration",
                    "120", "--seed", "1", "--distinct-keys", "2000", "--endpoint", "digits",
                    "-o", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "spiky" in result.output
    return path


def test_simulate_prints_a_row_per_fleet_and_writes_json(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = invoke("simulate", "--trace", str(trace), "--profile", str(PROFILE), "--policy",
                    "balanced", "--policy", "aggressive", "--fixed", "2", "--instance",
                    "c7i.large", "--slo-ms", "100", "--cache-ttl-s", "60", "--json",
                    str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    for label in ("balanced", "aggressive", "fixed 2", "cold-start $", "% over SLO"):
        assert label in result.output
    data = json.loads(out.read_text())
    assert data["format"] == "frugal-simulate/1" and data["end_to_end"] is True
    assert [f["fleet"] for f in data["fleets"]] == ["balanced", "aggressive", "fixed 2"]
    fixed = data["fleets"][2]
    hours = fixed["duration_s"] / 3600
    assert fixed["usd"]["total"] == pytest.approx(2 * data["replica_usd_per_hour"] * hours,
                                                  rel=1e-4)  # fmt: skip
    assert fixed["cache_hits"] > 0
    assert len(fixed["series"]["t_s"]) == len(fixed["series"]["replicas"]) > 10


def test_the_config_gives_batching_cache_ttl_instance_and_policy(
    trace: Path, tmp_path: Path, digits_model_file: Path
) -> None:
    data: dict[str, Any] = digits_config(digits_model_file, tmp_path)
    data["models"][0]["autoscaling"] = {"policy": "aggressive", "min_replicas": 0}
    data["endpoints"][0]["cache"] = {"ttl_s": 30}
    config = write_config(tmp_path, data)
    out = tmp_path / "sim.json"
    result = invoke("simulate", "--trace", str(trace), "--profile", str(PROFILE), "--config",
                    str(config), "--json", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    sim = json.loads(out.read_text())
    assert sim["fleets"][0]["fleet"] == "aggressive"
    assert sim["max_batch_size"] == 32 and sim["fleets"][0]["cache_hits"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", str(PROFILE)], "Missing option '--trace'"),
        (["--policy", "frugalest"], "--policy 'frugalest': choose"),
        (["--policy", "custom"], "--policy custom reads models[].autoscaling: give --config"),
        (["--instance", "c7i.largest"], "--instance 'c7i.largest' is not in the price catalog"),
        (["--fixed", "0"], "Invalid value for '--fixed'"),
        (["--slo-ms", "-1"], "Invalid value for '--slo-ms'"),
        (["--replica-vcpus", "4"], "--replica-vcpus 4 is more than c7i.large's 2"),
        (["--min-replicas", "5", "--max-replicas", "2"], "--min-replicas 5 is above"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(trace: Path, args: list[str], message: str) -> None:
    base = ["simulate", "--trace", str(trace), "--profile", str(PROFILE), "--instance",
            "c7i.large"]  # fmt: skip
    if args[0] == "--profile":
        base = ["simulate", "--instance", "c7i.large"]
    result = invoke(*base, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_trace_or_profile_exits_2_naming_the_line(tmp_path: Path) -> None:
    unsorted = tmp_path / "t.csv"
    unsorted.write_text("t_s,endpoint,key\n2,digits,\n1,digits,\n")
    result = invoke("simulate", "--trace", str(unsorted), "--profile", str(PROFILE),
                    "--instance", "c7i.large")  # fmt: skip
    assert result.exit_code == 2
    assert "row 2: t_s 1 is before the previous row's 2" in result.output
    broken = tmp_path / "p.json"
    broken.write_text("{}")
    unsorted.write_text("t_s,endpoint\n1,digits\n")
    result = invoke("simulate", "--trace", str(unsorted), "--profile", str(broken),
                    "--instance", "c7i.large")  # fmt: skip
    assert result.exit_code == 2 and str(broken) in result.output


def test_trace_subcommand_errors_exit_2(tmp_path: Path) -> None:
    result = invoke("simulate", "trace", "--rate", "5", "--duration", "10", "-o",
                    str(tmp_path / "t.txt"))  # fmt: skip
    assert result.exit_code == 2 and "expected a .csv or .jsonl name" in result.output
    result = invoke("simulate", "trace", "--rate", "0", "--duration", "10", "-o", "t.csv")
    assert result.exit_code == 2 and "Invalid value for '--rate'" in result.output
    result = invoke("simulate", "trace", "--rate", "5", "--duration", "10", "--endpoint",
                    "a:x", "-o", str(tmp_path / "t.csv"))  # fmt: skip
    assert result.exit_code == 2 and "NAME:WEIGHT" in result.output


def test_help_explains_both_verbs() -> None:
    result = invoke("simulate", "--help")
    assert result.exit_code == 0
    assert "Price autoscaling policies" in result.output and "trace" in result.output
    result = invoke("simulate", "trace", "--help")
    assert "--distinct-keys" in result.output and "diurnal" in result.output
