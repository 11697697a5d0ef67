"""`frugal check`: the cost gate over a config, its models' profiles and a baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.cli import main
from frugal.optimize.check import parse_increase
from frugal.runtimes import sha256_of
from tests.optimize.profiles import point, profile, write

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def digits_profile(sha256: str, items_per_s: float = 4000.0) -> dict[str, Any]:
    """Batch 8 (the priced one for max_batch_size 16) runs at ``items_per_s`` a slot."""
    return profile(
        [point(1, 1.0, 1000.0), point(8, 4.0, items_per_s), point(32, 9.0, 2 * items_per_s)],
        sha256=sha256,
    )


class Project:
    """A frugal.yaml over the real digits model, its profile under profiles/, and a baseline."""

    def __init__(self, tmp_path: Path, model_file: Path) -> None:
        self.dir = tmp_path
        self.sha256 = sha256_of(model_file)
        self.config: dict[str, Any] = {
            "instance": {"type": "c7i.large", "price_usd_per_hour": 0.10},
            "models": [{"name": "digits", "runtime": "sklearn", "path": str(model_file),
                        "sha256": self.sha256, "batching": {"max_batch_size": 16}}],
            "endpoints": [{"name": "digits", "model": "digits"}],
        }  # fmt: skip
        self.write_config()
        self.write_profile()
        self.baseline = tmp_path / "cost-baseline.json"

    def write_config(self) -> None:
        (self.dir / "frugal.yaml").write_text(yaml.safe_dump(self.config))

    def write_profile(self, items_per_s: float = 4000.0, sha256: str | None = None) -> None:
        write(self.dir / "profiles" / "digits.json",
              digits_profile(sha256 or self.sha256, items_per_s))  # fmt: skip

    def check(self, *args: str) -> Result:
        return invoke("check", "--config", str(self.dir / "frugal.yaml"),
                      "--baseline", str(self.baseline), *args)  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, digits_model_file: Path) -> Project:
    p = Project(tmp_path, digits_model_file)
    result = p.check("--qps", "100", "--update")
    assert result.exit_code == 0, result.output
    return p


def test_update_writes_a_baseline_that_then_passes(project: Project) -> None:
    """--update stores the inputs and each endpoint's cost; a re-run with no change passes."""
    data = json.loads(project.baseline.read_text())
    assert data["format"] == "frugal-cost-baseline/1"
    assert data["inputs"] == {"qps": 100.0, "headroom": 0.7}
    digits = data["endpoints"]["digits"]
    # $0.10/h over 2 slots at batch 8 (largest measured <= max_batch_size 16), 4,000 items/s.
    assert digits["batch_size"] == 8 and digits["max_batch_size"] == 16
    assert digits["usd_per_1k"] == pytest.approx(1000 * 0.10 / 3600 / (2 * 4000))
    assert digits["replicas"] == 1
    assert digits["billed_usd_per_1k"] == pytest.approx(1000 * 0.10 / 3600 / 100)
    result = project.check()
    assert result.exit_code == 0, result.output
    assert "cost gate passed" in result.output
    assert "100 requests/s per endpoint" in result.output  # the baseline's qps, reused


@pytest.mark.parametrize(("price", "code"), [(0.12, 1), (0.105, 0)])
def test_price_rise_gate(project: Project, price: float, code: int) -> None:
    """A 20% price rise fails the 10% gate (exit 1); a 5% rise passes (exit 0)."""
    project.config["instance"]["price_usd_per_hour"] = price
    project.write_config()
    result = project.check("--max-increase", "10%")
    assert result.exit_code == code, result.output
    assert ("+20.0%" if code else "+5.0%") in result.output
    if code:
        assert "cost gate failed: digits rose more than 10%" in result.output


def test_slower_profile_fails_the_gate(project: Project) -> None:
    """A profile 1/1.2 as fast raises allocated $/1k by 20%: exit 1 (billed stays 1 replica)."""
    project.write_profile(items_per_s=4000.0 / 1.2)
    result = project.check("--max-increase", "0.1")
    assert result.exit_code == 1, result.output
    assert "+20.0%" in result.output and "+0.0%" in result.output
    assert project.check("--max-increase", "0.25").exit_code == 0


def test_bigger_batch_in_config_is_cheaper(project: Project) -> None:
    """Raising max_batch_size to 32 prices the measured batch 32 (twice the items/s)."""
    project.config["models"][0]["batching"]["max_batch_size"] = 32
    project.write_config()
    result = project.check()
    assert result.exit_code == 0, result.output
    assert "-50.0%" in result.output


def test_stale_profile_exits_2(project: Project) -> None:
    """A profile whose sha256 is not the config's model's is stale: exit 2, re-run profile."""
    project.write_profile(sha256="cd" * 32)
    result = project.check()
    assert result.exit_code == 2
    assert "error: stale profile" in result.output and "cdcdcdcdcdcd..." in result.output
    config, out = project.dir / "frugal.yaml", project.dir / "profiles" / "digits.json"
    assert f"hint: run `frugal profile {config} --model digits --out {out}`" in result.output


def test_missing_baseline_exits_2_with_hint(tmp_path: Path, digits_model_file: Path) -> None:
    """Without a baseline the gate cannot run: exit 2 and say to run --update."""
    p = Project(tmp_path, digits_model_file)
    result = p.check()
    assert result.exit_code == 2
    assert f"error: {p.baseline}: no cost baseline" in result.output
    assert "--update" in result.output
    result = p.check("--update")
    assert result.exit_code == 2 and "pass --qps N with the first --update" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "cannot read the cost baseline"),
        ('{"format": "frugal-profile/1"}', "not a cost baseline"),
        ('{"format": "frugal-cost-baseline/1", "inputs": {}}', "malformed cost baseline"),
    ],
)
def test_bad_baseline_exits_2(project: Project, content: str, message: str) -> None:
    """A baseline that is not JSON, not a baseline, or incomplete exits 2 naming it."""
    project.baseline.write_text(content)
    result = project.check()
    assert result.exit_code == 2
    assert f"error: {project.baseline}: {message}" in result.output


def test_bad_profiles_exit_2(project: Project) -> None:
    """A missing --profile file, a non-profile under profiles/, or no profiles at all: exit 2."""
    result = project.check("--profile", str(project.dir / "absent.json"))
    assert result.exit_code == 2 and "absent.json: file not found" in result.output
    (project.dir / "profiles" / "digits.json").write_text('{"format": "other"}')
    result = project.check()
    assert result.exit_code == 2 and "digits.json: not a frugal profile" in result.output
    (project.dir / "profiles" / "digits.json").unlink()
    result = project.check()
    assert result.exit_code == 2 and "no profiles:" in result.output


def test_no_profile_for_the_instance_hardware(project: Project) -> None:
    """A CPU profile cannot price a T4 instance: exit 2 with the command to take one."""
    project.config["instance"] = {"type": "g4dn.xlarge"}
    project.write_config()
    result = project.check()
    assert result.exit_code == 2
    assert "no profile of model digits on gpu:T4 hardware" in result.output
    assert "--device cuda" in result.output


def flat(result: Result) -> str:
    """The output with rich's line wrapping undone, so a message reads as one line."""
    return " ".join(result.output.split())


def test_renamed_endpoint_fails_unless_allowed(project: Project) -> None:
    """Renaming the endpoint (here also 18x dearer) fails as removed: the new name has no
    baseline to compare with; --allow-removed passes and shows the new name as added."""
    project.config["endpoints"] = [{"name": "digits-v2", "model": "digits"}]
    project.config["instance"]["price_usd_per_hour"] = 1.8
    project.write_config()
    result = project.check()
    assert result.exit_code == 1, result.output
    out = flat(result)
    assert "cost gate failed: digits in the baseline but not in" in out
    assert "(removed or renamed" in out and "pass --allow-removed" in out
    assert "cost gate passed" not in out
    result = project.check("--allow-removed")
    assert result.exit_code == 0, result.output
    out = flat(result)
    assert "removed (allowed)" in out and "added (no baseline)" in out
    assert "added: digits-v2 (not in the baseline, so not compared" in out


def test_added_endpoint_passes_and_is_named(project: Project) -> None:
    """A second endpoint that is new since the baseline is reported, and the gate passes."""
    project.config["endpoints"].append({"name": "digits-b", "model": "digits"})
    project.write_config()
    result = project.check()
    assert result.exit_code == 0, result.output
    out = flat(result)
    assert "added: digits-b (not in the baseline, so not compared; `--update` records it)" in out
    assert "cost gate passed" in out


def test_update_records_a_rename(project: Project) -> None:
    """--update after a rename writes the new endpoint only, and the gate then passes."""
    project.config["endpoints"] = [{"name": "digits-v2", "model": "digits"}]
    project.write_config()
    assert project.check("--update").exit_code == 0
    assert list(json.loads(project.baseline.read_text())["endpoints"]) == ["digits-v2"]
    assert project.check().exit_code == 0


def test_max_increase_forms() -> None:
    """`10%` and `0.1` mean the same; a bare 10 is ambiguous and refused."""
    assert parse_increase("10%") == pytest.approx(0.1) == parse_increase("0.1")
    result = invoke("check", "--max-increase", "10")
    assert result.exit_code == 2 and "hint: write 10% or 0.1" in result.output


def test_example_project_passes_in_a_subprocess() -> None:
    """`python -m frugal check` on examples/cost-gate passes against its committed baseline."""
    folder = ROOT / "examples" / "cost-gate"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "frugal", "check", "--config", str(folder / "frugal.yaml"),
         "--baseline", str(folder / "cost-baseline.json")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cost gate passed" in done.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, frugal.optimize.check_report; "
         "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]", probe.stderr


def test_update_replaces_a_broken_baseline(project: Project) -> None:
    """--update with --qps rewrites a baseline that no longer reads, and it then passes."""
    project.baseline.write_text("{oops")
    assert project.check("--update").exit_code == 2  # no qps to take from it
    result = project.check("--update", "--qps", "50")
    assert result.exit_code == 0, result.output
    assert json.loads(project.baseline.read_text())["inputs"]["qps"] == 50.0
    assert project.check().exit_code == 0


def test_profile_without_a_small_enough_batch_exits_2(project: Project) -> None:
    """max_batch_size 4 with a profile that starts at batch 8 is not priced at batch 8: exit 2."""
    write(project.dir / "profiles" / "digits.json",
          profile([point(8, 4.0, 4000.0)], sha256=project.sha256))  # fmt: skip
    project.config["models"][0]["batching"]["max_batch_size"] = 4
    project.write_config()
    result = project.check()
    assert result.exit_code == 2
    assert "measured no batch size <= digits's max_batch_size 4 (smallest: 8)" in result.output
