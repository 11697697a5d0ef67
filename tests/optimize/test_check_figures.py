"""`frugal check` prices from end-to-end figures when a profile has them, and says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frugal.cli import main
from tests.optimize.profiles import end_to_end, level, point, profile, write
from tests.optimize.test_check import Project


def check(project: Project, *args: str) -> Result:
    return CliRunner().invoke(main, ["check", "--config", str(project.dir / "frugal.yaml"),
                                     "--baseline", str(project.baseline), *args])  # fmt: skip


def write_end_to_end(project: Project, cpu_ms: float) -> None:
    """Batch 8 at 4,000 items/s a slot; the server's busiest level at ``cpu_ms`` per request."""
    model_only = profile([point(1, 1.0, 1000.0), point(8, 4.0, 4000.0)], sha256=project.sha256)
    write(
        project.dir / "profiles" / "digits.json",
        end_to_end(model_only, level(1, 700, 2.0, 2 * cpu_ms), level(16, 2500, 5.0, cpu_ms)),
    )


@pytest.fixture
def project(tmp_path: Path, digits_model_file: Path) -> Project:
    return Project(tmp_path, digits_model_file)


def test_an_end_to_end_profile_caps_a_replica_at_the_server_s_cpu(project: Project) -> None:
    """0.5 ms of server CPU a request on c7i.large's 2 vCPUs: 4,000 requests/s a replica, below
    the model's 8,000, so $/1k is the price of a second over 4,000 requests."""
    write_end_to_end(project, cpu_ms=0.5)
    result = check(project, "--update", "--qps", "200")
    assert result.exit_code == 0, result.output
    assert "end-to-end profile: a replica is capped by the server's measured CPU, 0.500 ms" \
        in result.output  # fmt: skip
    digits = json.loads(project.baseline.read_text())["endpoints"]["digits"]
    assert digits["figures"] == "end-to-end profile"
    assert digits["server_cpu_s_per_request"] == pytest.approx(0.0005)
    assert digits["usd_per_1k"] == pytest.approx(1000 * 0.10 / 3600 / 4000)


def test_a_model_only_profile_says_the_server_is_not_counted(project: Project) -> None:
    """Without an http section the gate prices the model alone and says how to measure more."""
    result = check(project, "--update", "--qps", "200")
    assert result.exit_code == 0, result.output
    assert "model-only profile: the server's own CPU is not counted" in result.output
    assert "--http" in result.output


def test_switching_to_end_to_end_figures_fails_the_gate_and_says_why(project: Project) -> None:
    """A baseline from model-only figures against an end-to-end run: the rise is the
    accounting's, and the note says so and how to record the new figures."""
    assert check(project, "--update", "--qps", "200").exit_code == 0
    write_end_to_end(project, cpu_ms=0.5)
    result = check(project)
    assert result.exit_code == 1, result.output
    assert "baseline was priced from a model-only profile, this run from an end-to-end" \
        in " ".join(result.output.split())  # fmt: skip
