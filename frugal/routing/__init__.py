"""Routing: which model versions answer each request (one model, or a cascade of them), and
the calibration of a cascade's gates from labeled data."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.calibrate import Calibration, Cascade, calibrate, resolve_cascade
from frugal.routing.cascade import CascadeRouter
from frugal.routing.gates import Gate
from frugal.routing.single import SingleModelRouter
from frugal.routing.sweep import Outcome, TierRun

__all__ = [
    "Calibration",
    "CallModel",
    "Cascade",
    "CascadeRouter",
    "Gate",
    "Outcome",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "SingleModelRouter",
    "TierRun",
    "calibrate",
    "resolve_cascade",
]
