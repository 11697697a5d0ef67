"""Observability: Prometheus metrics now; alerts and the dashboard page plug in here later."""

from frugal.observability.metrics import BatcherState, ServingMetrics

__all__ = ["BatcherState", "ServingMetrics"]
