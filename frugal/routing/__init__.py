"""Routing: which model versions answer each request (one model, or a cascade of them)."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.cascade import CascadeRouter
from frugal.routing.gates import Gate
from frugal.routing.single import SingleModelRouter

__all__ = [
    "CallModel",
    "CascadeRouter",
    "Gate",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "SingleModelRouter",
]
