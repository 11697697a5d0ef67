"""Metrics of the policy controller: each knob's value now, and every change it made."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ControllerMetrics:
    """Gauges are set when a knob moves (and once at start), never per request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.changes = Counter(
            "frugal_controller_changes", "Knobs the policy controller moved, by direction "
            "(up, down, on, off).", ["knob", "target", "direction"], registry=r,
        )  # fmt: skip
        self.max_wait = Gauge(
            "frugal_controller_max_wait_seconds", "A model version's batching max_wait_ms now, "
            "as the controller set it (in seconds).", ["model"], registry=r,
        )  # fmt: skip
        self.cache_ttl = Gauge(
            "frugal_controller_cache_ttl_seconds", "The TTL an endpoint's cache gives new "
            "entries now, as the controller set it.", ["endpoint"], registry=r,
        )  # fmt: skip
        self.degrade = Gauge(
            "frugal_controller_degrade_active", "1 while the controller has a selection rule "
            "switched on, else 0.", ["endpoint", "rule"], registry=r,
        )  # fmt: skip

    def set_value(self, knob: str, target: str, value: float) -> None:
        """``knob``: max_wait_ms (``target`` a model version), cache_ttl_s (an endpoint) or
        degrade (``endpoint/rule``)."""
        if knob == "max_wait_ms":
            self.max_wait.labels(target).set(value / 1000)
        elif knob == "cache_ttl_s":
            self.cache_ttl.labels(target).set(value)
        else:
            endpoint, _, rule = target.partition("/")
            self.degrade.labels(endpoint, rule).set(value)

    def observe_change(self, knob: str, target: str, old: float, new: float) -> None:
        if knob == "degrade":
            direction = "on" if new else "off"
        else:
            direction = "up" if new > old else "down"
        self.changes.labels(knob, target, direction).inc()
        self.set_value(knob, target, new)


__all__ = ["ControllerMetrics"]
