"""Routing: which model versions answer each request (single model now; cascades, splits later)."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.single import SingleModelRouter

__all__ = ["CallModel", "RouteRequest", "RoutedResult", "Router", "SingleModelRouter"]
