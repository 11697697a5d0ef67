"""The Prometheus alerting rules: rendered from frugal.yaml's thresholds, checked by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from frugal.cli import main
from frugal.config import AlertsConfig, parse_config
from frugal.errors import ConfigError
from frugal.observability.alert_rules import KINDS, render_rules
from tests.conftest import digits_config, write_config
from tests.observability.prometheus_tools import require

DEPLOY = Path(__file__).parents[2] / "deploy" / "prometheus"


def test_the_committed_rules_are_the_defaults_rendering() -> None:
    """deploy/prometheus/alerts.yml is what `frugal alerts rules` prints with no config."""
    committed = (DEPLOY / "alerts.yml").read_text()
    assert committed == render_rules(AlertsConfig()), (
        "deploy/prometheus/alerts.yml is stale: frugal alerts rules > deploy/prometheus/alerts.yml"
    )
    names = {r["alert"] for g in yaml.safe_load(committed)["groups"] for r in g["rules"]}
    assert names == {k.name for k in KINDS}


def test_promtool_checks_the_committed_rules() -> None:
    """`promtool check rules` accepts the file and counts all six rules."""
    result = subprocess.run([require("promtool"), "check", "rules", str(DEPLOY / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_each_rule_fires_when_it_should_and_not_otherwise() -> None:
    """`promtool test rules` runs alerts_test.yml: each rule on synthetic series, both ways."""
    result = subprocess.run([require("promtool"), "test", "rules", "alerts_test.yml"],
                            capture_output=True, text=True, cwd=DEPLOY, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = {t["alertname"] for test in yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())
              ["tests"] for t in test["alert_rule_test"]}  # fmt: skip
    assert tested == {k.name for k in KINDS}


def test_a_config_renders_its_own_thresholds(tmp_path: Path, digits_model_file: Path) -> None:
    """An endpoint's own p99 and error limit get rules of their own; the default rule leaves
    that endpoint out, and promtool accepts the result."""
    data = digits_config(digits_model_file, tmp_path)
    data["alerts"] = {"window_minutes": 5, "p99_ms": 250, "cache_hit_ratio_min": None,
                      "canary_rollback": False,
                      "endpoints": {"digits": {"p99_ms": 40, "error_rate_max": 0.01}}}  # fmt: skip
    path = write_config(tmp_path, data)
    result = CliRunner().invoke(main, ["alerts", "rules", "--config", str(path)])
    assert result.exit_code == 0, result.output
    rules = yaml.safe_load(result.output)["groups"][0]["rules"]
    exprs = {(r["alert"], r["expr"].strip()) for r in rules}
    names = [r["alert"] for r in rules]
    assert "FrugalCacheHitRatioLow" not in names and "FrugalCanaryRolledBack" not in names
    assert (
        "FrugalP99AboveSLO",
        "histogram_quantile(0.99, sum by (endpoint, le) (rate("
        'frugal_request_latency_seconds_bucket{endpoint="digits"}[5m])))\n> 0.04',
    ) in exprs
    assert (
        "FrugalP99AboveSLO",
        "histogram_quantile(0.99, sum by (endpoint, le) (rate("
        'frugal_request_latency_seconds_bucket{endpoint!~"digits"}[5m])))\n> 0.25',
    ) in exprs
    assert any(a == "FrugalErrorRateHigh" and 'endpoint="digits"' in e and e.endswith("> 0.01")
               for a, e in exprs)  # fmt: skip
    rendered = tmp_path / "alerts.yml"
    rendered.write_text(result.output)
    check = subprocess.run([require("promtool"), "check", "rules", str(rendered)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("alerts", "field", "message"),
    [
        ({"endpoints": {"nope": {"p99_ms": 5}}}, "alerts.endpoints.nope", "no endpoint 'nope'"),
        ({"webhook_url": "ftp://x"}, "alerts.webhook_url", "http:// or https://"),
        ({"cost_rise_max": 0}, "alerts.cost_rise_max", "greater than 0"),
        ({"budget_share": 1.5}, "alerts.budget_share", "less than or equal to 1"),
        (
            {"endpoints": {"digits": {"p99_ms": -1}}},
            "alerts.endpoints.digits.p99_ms",
            "greater than 0",
        ),
        ({"p99": 5}, "alerts.p99", "Extra inputs"),
    ],
)
def test_bad_thresholds_name_the_field(
    tmp_path: Path, digits_model_file: Path, alerts: dict[str, Any], field: str, message: str
) -> None:
    """Every bad threshold is a ConfigError naming its path in frugal.yaml."""
    data = digits_config(digits_model_file, tmp_path) | {"alerts": alerts}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.field == field
    assert message in caught.value.message


def test_rules_with_a_bad_config_exit_2(tmp_path: Path) -> None:
    """A config that does not load is exit 2 with the field named, never a traceback."""
    path = tmp_path / "frugal.yaml"
    path.write_text("instance: {type: c7i.large}\nmodels: []\n")
    result = CliRunner().invoke(main, ["alerts", "rules", "--config", str(path)])
    assert result.exit_code == 2
    assert "models" in result.output


def test_rules_read_frugal_yaml_in_the_current_folder(
    tmp_path: Path, digits_model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, ./frugal.yaml's thresholds are rendered when it exists."""
    data = digits_config(digits_model_file, tmp_path) | {"alerts": {"window_minutes": 5}}
    write_config(tmp_path, data)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["alerts", "rules"])
    assert result.exit_code == 0, result.output
    assert "[5m]" in result.output and "[15m]" not in result.output
