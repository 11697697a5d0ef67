"""The PromQL of deploy/grafana/frugal.json, and the metric names an expression reads.

Grafana's variables are replaced by values Prometheus accepts, so each expression can be parsed
by promtool and queried on a real Prometheus. Metric names are read from an expression with its
strings, label matchers, ranges and grouping clauses taken out: what is left that is not a
function, keyword or number is a metric name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "frugal.json"
# Grafana's variables, as a query over the last hour sees them.
VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s", "$endpoint": ".*"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}  # fmt: skip


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL with variables replaced) for every panel target and variable query."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", substitute(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert inner is not None, query
            yield f"variable {variable['name']}", inner.group(1)


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue  # a function (sum, rate, histogram_quantile, ...) or a keyword
        names.add(word)
    return names


__all__ = ["DASHBOARD", "dashboard", "expressions", "metric_names", "substitute"]
