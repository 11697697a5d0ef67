"""Prometheus alerting rules rendered from frugal.yaml's `alerts:` thresholds.

One source of truth: the thresholds live in the config (frugal/config/alerts.py), this module
turns them into PromQL over the metric names frugal exports, and ``frugal alerts check``
evaluates the same six rules from the ledger (alert_check.py). deploy/prometheus/alerts.yml is
``render_rules(AlertsConfig())``; a test keeps it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from frugal.config import AlertsConfig


@dataclass(frozen=True, slots=True)
class AlertKind:
    """One of the rules: its alert name, and what it means for whoever is paged."""

    name: str
    summary: str


COST_RISING = AlertKind("FrugalCostPer1kRising", "$ per 1k requests up week over week")
CACHE_HIT_LOW = AlertKind("FrugalCacheHitRatioLow", "cache hit ratio below its target")
P99_ABOVE_SLO = AlertKind("FrugalP99AboveSLO", "p99 latency above the endpoint's SLO")
ERROR_RATE_HIGH = AlertKind("FrugalErrorRateHigh", "share of 5xx answers above its limit")
BUDGET_SPENT = AlertKind("FrugalBudgetMostlySpent", "an API key's daily budget mostly spent")
CANARY_ROLLED_BACK = AlertKind("FrugalCanaryRolledBack", "a canary was rolled back")
KINDS = (COST_RISING, CACHE_HIT_LOW, P99_ABOVE_SLO, ERROR_RATE_HIGH, BUDGET_SPENT,
         CANARY_ROLLED_BACK)  # fmt: skip

HEADER = """\
# Prometheus alerting rules for frugal, rendered by `frugal alerts rules` from frugal.yaml's
# `alerts:` thresholds. This file is the defaults' rendering; render your own with
#   frugal alerts rules --config frugal.yaml > alerts.yml
# Checked by `promtool check rules` and unit-tested by `promtool test rules alerts_test.yml`.
# Do not edit by hand: docs/alerts.md explains each rule and its threshold.
"""


def _number(value: float) -> str:
    """A threshold as PromQL reads it, without float noise (0.1, not 0.1000000000000000055)."""
    return f"{value:.10g}"


def _matcher(labels: list[str]) -> str:
    return "{" + ",".join(labels) + "}" if labels else ""


def _split(config: AlertsConfig, field: str) -> list[tuple[list[str], float]]:
    """(label matchers, threshold) pairs: one per endpoint with its own value, and one for the
    rest at the default (left out when the default is null)."""
    own = {n: getattr(e, field) for n, e in sorted(config.endpoints.items())
           if getattr(e, field) is not None}  # fmt: skip
    out: list[tuple[list[str], float]] = [([f'endpoint="{n}"'], v) for n, v in own.items()]
    default = getattr(config, field)
    if default is not None:
        rest = [f'endpoint!~"{"|".join(own)}"'] if own else []
        out.insert(0, (rest, default))
    return out


def _rule(kind: AlertKind, expr: str, *, severity: str, description: str,
          labels: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "alert": kind.name,
        "expr": expr,
        "labels": {"severity": severity, **(labels or {})},
        "annotations": {"summary": kind.summary, "description": description},
    }


def build_rules(config: AlertsConfig) -> list[dict[str, Any]]:
    """The rules, as Prometheus's rule file holds them (a list of ``alert`` entries)."""
    w = f"{config.window_minutes}m"
    c = f"{config.cost_window_hours}h"
    rules: list[dict[str, Any]] = []

    def per_1k(offset: str) -> str:
        return (f"sum by (endpoint) (increase(frugal_cost_usd_total[{c}]{offset}))"
                f" / sum by (endpoint) (increase(frugal_requests_total[{c}]{offset}))")  # fmt: skip

    rules.append(_rule(
        COST_RISING,
        f"({per_1k('')})\n/ ({per_1k(' offset 7d')})\n> {_number(1 + config.cost_rise_max)}",
        severity="warning",
        description=f"Endpoint {{{{ $labels.endpoint }}}}: $ per 1k requests over the last {c} "
        f"is {{{{ $value | humanizePercentage }}}} of the same {c} a week earlier (limit: "
        f"{_number(100 * (1 + config.cost_rise_max))}%).",
    ))  # fmt: skip
    for matchers, target in _split(config, "cache_hit_ratio_min"):
        hit = _matcher([*matchers, 'result="hit"'])
        every = _matcher(matchers)
        lookups = f"sum by (endpoint) (rate(frugal_cache_lookups_total{every}[{w}]))"
        # No hit at all leaves no hit series: count it as 0 hits, not as no answer.
        hits = f"(sum by (endpoint) (rate(frugal_cache_lookups_total{hit}[{w}])) or {lookups} * 0)"
        rules.append(_rule(
            CACHE_HIT_LOW, f"{hits}\n/ {lookups}\n< {_number(target)}", severity="warning",
            description=f"Endpoint {{{{ $labels.endpoint }}}}: cache hit ratio over {w} is "
            f"{{{{ $value | humanizePercentage }}}} (target: {_number(100 * target)}%).",
        ))  # fmt: skip
    for matchers, p99_ms in _split(config, "p99_ms"):
        sel = _matcher(matchers)
        rules.append(_rule(
            P99_ABOVE_SLO,
            f"histogram_quantile(0.99, sum by (endpoint, le) "
            f"(rate(frugal_request_latency_seconds_bucket{sel}[{w}])))\n> {_number(p99_ms / 1000)}",
            severity="warning",
            description=f"Endpoint {{{{ $labels.endpoint }}}}: p99 latency over {w} is "
            f"{{{{ $value | humanizeDuration }}}} (SLO: {_number(p99_ms)} ms).",
        ))  # fmt: skip
    for matchers, limit in _split(config, "error_rate_max"):
        errors = _matcher([*matchers, 'status=~"5.."'])
        every = _matcher(matchers)
        rules.append(_rule(
            ERROR_RATE_HIGH,
            f"sum by (endpoint) (rate(frugal_requests_total{errors}[{w}]))\n"
            f"/ sum by (endpoint) (rate(frugal_requests_total{every}[{w}]))\n> {_number(limit)}",
            severity="critical",
            description=f"Endpoint {{{{ $labels.endpoint }}}}: {{{{ $value | humanizePercentage "
            f"}}}} of answers over {w} were 5xx (limit: {_number(100 * limit)}%).",
        ))  # fmt: skip
    rules.append(_rule(
        BUDGET_SPENT, f"frugal_budget_spent_ratio >= {_number(config.budget_share)}",
        severity="warning",
        description=f"Key {{{{ $labels.key }}}} has spent {{{{ $value | humanizePercentage }}}} "
        f"of its daily budget (alert at {_number(100 * config.budget_share)}%).",
    ))  # fmt: skip
    if config.canary_rollback:
        # A counter series is born at 1 by the first rollback: increase() sees no rise in a
        # series with one sample, so a series new in the window counts as a rollback too.
        rules.append(_rule(
            CANARY_ROLLED_BACK,
            f"increase(frugal_rollbacks_total[{w}]) > 0\n"
            f"or (frugal_rollbacks_total unless frugal_rollbacks_total offset {w})",
            severity="warning",
            description="Endpoint {{ $labels.endpoint }}: canary {{ $labels.model }} was rolled "
            f"back in the last {w}.",
        ))  # fmt: skip
    return rules


class _Literal(str):
    """A multi-line PromQL expression, written as a YAML block for people to read."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def render_rules(config: AlertsConfig) -> str:
    """The rule file's text: what ``frugal alerts rules`` prints."""
    rules = build_rules(config)
    for rule in rules:
        if "\n" in rule["expr"]:
            rule["expr"] = _Literal(rule["expr"] + "\n")
    body = {"groups": [{"name": "frugal", "rules": rules}]}
    return HEADER + yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=100)


__all__ = [
    "BUDGET_SPENT",
    "CACHE_HIT_LOW",
    "CANARY_ROLLED_BACK",
    "COST_RISING",
    "ERROR_RATE_HIGH",
    "KINDS",
    "P99_ABOVE_SLO",
    "AlertKind",
    "build_rules",
    "render_rules",
]
