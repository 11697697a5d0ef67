"""deploy/grafana/frugal.json: an importable dashboard whose every query reads frugal's metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from frugal.access import KeyStore
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from tests.conftest import digits_config
from tests.observability.grafana_queries import dashboard, expressions, metric_names
from tests.observability.prometheus_tools import require

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"

# The suffixes a scrape shows for each family type (prometheus_client's exposition).
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
            "_created"), "gauge": ("",), "summary": ("_count", "_sum", "_created"),
            "info": ("_info",), "untyped": ("",)}  # fmt: skip


def every_part_config(digit_versions: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    """A server with every part that registers metrics: auth (budgets), a cascade, a cache and
    a split watched for rollback."""
    data = digits_config(digit_versions["1"], tmp_path)
    two = dict(data["models"][0], version="2", path=str(digit_versions["2"]),
               sha256=sha256_of(digit_versions["2"]))  # fmt: skip
    data["models"].append(two)
    data["endpoints"] = [
        {"name": "digits", "route": {"cascade": [
            {"model": "digits:1", "accept": {"confidence": ">= 0.9"}}, {"model": "digits:2"}]},
         "cache": {"ttl_s": 600}},
        {"name": "canary", "route": {
            "split": [{"model": "digits:1", "weight": 90}, {"model": "digits:2", "weight": 10}],
            "rollback": {"min_requests": 10}}},
    ]  # fmt: skip
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    return data


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return names


def test_every_query_names_a_metric_frugal_exports(
    serve: Any, digit_versions: dict[str, Path], tmp_path: Path
) -> None:
    """Each metric a panel or variable reads is on a live server's /metrics."""
    viewer = KeyStore(tmp_path / "keys.db").create("grafana", "viewer")[1]
    server = serve(parse_config(every_part_config(digit_versions, tmp_path)))
    scrape = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {viewer}"})
    assert scrape.status_code == 200
    exported = exported_names(scrape.text)
    assert "frugal_budget_spent_ratio" in exported and "frugal_rollbacks_total" in exported
    used: dict[str, set[str]] = {}
    for where, expr in expressions(dashboard()):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr}"
        for name in names:
            used.setdefault(name, set()).add(where)
    unknown = {name: sorted(places) for name, places in used.items() if name not in exported}
    assert not unknown, f"queries name metrics frugal does not export: {unknown}"
    assert len(used) >= 15  # the dashboard covers the panels, not one metric
    # The alert rules read the same exports.
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    in_rules = set().union(*(metric_names(rule["expr"]) for rule in rules))
    assert in_rules and in_rules <= exported, in_rules - exported


def test_metric_names_are_read_from_an_expression_and_nothing_else() -> None:
    """Functions, grouping labels, matchers, ranges and keywords are not taken for metrics."""
    expr = ('histogram_quantile(0.99, sum by (endpoint, le) (rate(frugal_nope_bucket'
            '{endpoint=~"a|b", le!="x"}[5m] offset 1d))) > bool 1 or on (endpoint) vector(0)'
            " unless frugal_other")  # fmt: skip
    assert metric_names(expr) == {"frugal_nope_bucket", "frugal_other"}


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    """Each expression is valid PromQL: promtool checks them as recording rules."""
    rules = [{"record": f"grafana:query_{i}", "expr": expr}
             for i, (_, expr) in enumerate(expressions(dashboard()))]  # fmt: skip
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    result = subprocess.run([require("promtool"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_dashboard_imports_with_a_datasource_input_and_panels_for_each_view() -> None:
    """Grafana's import asks for the Prometheus data source; every panel uses it, has a place
    on the grid, and the issue's views are all there."""
    board = dashboard()
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["targets"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for view in ("$ per 1k", "model vs overhead", "model version", "idle", "budget",
                 "cache hit ratio", "saved", "escalation", "batch size", "release reason",
                 "queue", "p50 / p99", "status"):  # fmt: skip
        assert view in titles, view
