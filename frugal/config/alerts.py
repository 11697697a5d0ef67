"""frugal.yaml's optional `alerts:` section: the thresholds of the alert rules.

One source for both ways of alerting: ``frugal alerts rules`` renders them into Prometheus
alerting rules (deploy/prometheus/alerts.yml is the defaults' rendering), and ``frugal alerts
check`` evaluates the same rules from the ledger for users with no Prometheus (docs/alerts.md).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from frugal.config._base import _FieldError, _Section

# Endpoint names go into PromQL label matchers as regex alternatives; the config's own endpoint
# names hold to this too (no quotes or regex metacharacters).
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class EndpointAlerts(_Section):
    """One endpoint's own thresholds; each left out takes the section's default."""

    p99_ms: Annotated[float, Field(gt=0)] | None = None  # the endpoint's latency SLO
    cache_hit_ratio_min: Annotated[float, Field(ge=0, le=1)] | None = None
    error_rate_max: Annotated[float, Field(ge=0, le=1)] | None = None


class AlertsConfig(_Section):
    """Defaults fit a first deployment; every threshold is a share (0.25 = 25%) or milliseconds.

    Rates (errors, p99, cache hits) are judged over the last ``window_minutes``; $ per 1k over
    the last ``cost_window_hours`` against the same hours a week earlier.
    """

    window_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    cost_window_hours: Annotated[int, Field(ge=1, le=168)] = 24
    # $ per 1k requests up by more than this share week over week (0.25: up more than 25%).
    cost_rise_max: Annotated[float, Field(gt=0)] = 0.25
    # Answers with a 5xx status, as a share of all answers.
    error_rate_max: Annotated[float, Field(ge=0, le=1)] = 0.05
    # Every endpoint's p99 latency SLO unless it sets its own; null: no latency alert by default.
    p99_ms: Annotated[float, Field(gt=0)] | None = 1000.0
    # Cache hits per lookup below this on an endpoint with a cache; null: no cache alert by default.
    cache_hit_ratio_min: Annotated[float, Field(ge=0, le=1)] | None = 0.1
    # An API key's daily budget (`frugal keys create --budget-usd-day`) this share spent.
    budget_share: Annotated[float, Field(gt=0, le=1)] = 0.8
    canary_rollback: bool = True  # alert when a canary was rolled back
    endpoints: dict[str, EndpointAlerts] = Field(default_factory=dict)
    webhook_url: str | None = None  # `frugal alerts check` POSTs what fires here (JSON)

    @field_validator("endpoints")
    @classmethod
    def _names(cls, endpoints: dict[str, EndpointAlerts]) -> dict[str, EndpointAlerts]:
        for name in endpoints:
            if not _ENDPOINT_NAME.match(name):
                raise _FieldError(name, "an endpoint name: letters, digits, _.:-")
        return endpoints

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    def for_endpoint(self, name: str) -> EndpointAlerts:
        """The thresholds that apply to ``name``: its own where set, else the defaults."""
        own = self.endpoints.get(name) or EndpointAlerts()
        return EndpointAlerts(
            p99_ms=own.p99_ms if own.p99_ms is not None else self.p99_ms,
            cache_hit_ratio_min=own.cache_hit_ratio_min
            if own.cache_hit_ratio_min is not None
            else self.cache_hit_ratio_min,
            error_rate_max=own.error_rate_max
            if own.error_rate_max is not None
            else self.error_rate_max,
        )


def check_alerts(endpoint_names: list[str], alerts: AlertsConfig | None) -> None:
    """Thresholds for an endpoint the config does not serve are a typo: name the field."""
    if alerts is None:
        return
    for name in alerts.endpoints:
        if name not in endpoint_names:
            served = ", ".join(endpoint_names) or "none"
            raise _FieldError(f"alerts.endpoints.{name}", f"no endpoint {name!r}; served: {served}")


__all__ = ["AlertsConfig", "EndpointAlerts", "check_alerts"]
