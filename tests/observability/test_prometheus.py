"""A real Prometheus (Debian's package) scrapes a live frugal with the alert rules loaded."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from frugal.cli import main
from frugal.config import parse_config
from frugal.observability.alert_rules import KINDS
from frugal.optimize import free_port
from tests.conftest import START_TIMEOUT_S, digits_config, write_config
from tests.observability.grafana_queries import dashboard, expressions
from tests.observability.prometheus_tools import require
from tests.waiting import eventually

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"


class Prometheus:
    """One prometheus process on 127.0.0.1, its data in a temp folder, scraping ``target``."""

    def __init__(self, folder: Path, target: str, rules: Path = RULES) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "frugal", "static_configs": [{"targets": [target]}]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = folder / "prometheus.log"
        command = [
            require("prometheus"), f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log.read_text(errors='replace')}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def query(self, expr: str) -> Any:
        """The query API's ``data``; an error status fails with Prometheus's own message."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str, rules: Path = RULES) -> Prometheus:
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        prom = Prometheus(folder, target, rules)
        started.append(prom)
        eventually(prom.ready, "prometheus to be ready", timeout_s=START_TIMEOUT_S,
                   interval_s=0.1, ignoring=(httpx.HTTPError,))  # fmt: skip
        return prom

    yield start
    for prom in started:
        prom.stop()


def test_prometheus_scrapes_frugal_and_loads_the_alert_rules(
    serve: Any, prometheus_for: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """A frugal series reads back through Prometheus's query API with the count sent; the six
    rules are loaded; and every Grafana query runs on the real thing."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    for row in digits[0][:7]:
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                       json={"instances": [row.tolist()]}, timeout=30)  # fmt: skip
        assert r.status_code == 200
    prom = prometheus_for(f"127.0.0.1:{server.port}")

    def requests_seen() -> float | None:
        result = prom.query('sum(frugal_requests_total{endpoint="digits",status="200"})')["result"]
        return float(result[0]["value"][1]) if result else None

    eventually(lambda: requests_seen() == 7.0, "Prometheus to scrape frugal's 7 requests",
               timeout_s=START_TIMEOUT_S, interval_s=0.2, ignoring=(httpx.HTTPError,))  # fmt: skip
    up = prom.query('up{job="frugal"}')["result"]
    assert [float(s["value"][1]) for s in up] == [1.0]

    groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {k.name for k in KINDS}
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])

    for _, expr in expressions(dashboard()):
        prom.query(expr)  # parses and evaluates: status success
    cost = prom.query('sum(frugal_cost_usd_total{endpoint="digits"})')["result"]
    assert cost and float(cost[0]["value"][1]) > 0


def test_a_rule_rendered_from_the_config_fires_in_prometheus(
    serve: Any, prometheus_for: Any, digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """`frugal alerts rules --config` with a 1-minute window and a p99 SLO no answer can meet:
    Prometheus, scraping real traffic, fires FrugalP99AboveSLO for that endpoint."""
    data = digits_config(digits_model_file, tmp_path)
    data["alerts"] = {"window_minutes": 1, "endpoints": {"digits": {"p99_ms": 0.001}}}
    path = write_config(tmp_path, data)
    rendered = CliRunner().invoke(main, ["alerts", "rules", "--config", str(path)])
    assert rendered.exit_code == 0, rendered.output
    rules = tmp_path / "alerts.yml"
    rules.write_text(rendered.output)
    server = serve(path)
    prom = prometheus_for(f"127.0.0.1:{server.port}", rules)
    row = digits[0][0].tolist()

    def p99_alert_firing() -> list[Any]:
        # Traffic keeps arriving, so the latency histogram's rate over [1m] has a rise to see.
        r = httpx.post(f"{server.url}/v1/endpoints/digits/predict", json={"instances": [row]},
                       timeout=30)  # fmt: skip
        assert r.status_code == 200
        alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "FrugalP99AboveSLO"
                and a["state"] == "firing"]  # fmt: skip

    (alert,) = eventually(p99_alert_firing, "FrugalP99AboveSLO to fire in Prometheus",
                          timeout_s=START_TIMEOUT_S, interval_s=0.2,
                          ignoring=(httpx.HTTPError,))  # fmt: skip
    assert alert["labels"]["endpoint"] == "digits"
    assert "SLO: 0.001 ms" in alert["annotations"]["description"]
