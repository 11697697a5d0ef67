"""Routing: which model versions answer each request (one model, a cascade, or a fallback list),
and the calibration of a cascade's gates from labeled data."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.batch_costs import BatchProfile
from frugal.routing.calibrate import Calibration, Cascade, calibrate, resolve_cascade
from frugal.routing.cascade import CascadeRouter
from frugal.routing.fallback import FallbackResult, first_answer
from frugal.routing.gates import Gate
from frugal.routing.prompt_budget import apply_budget, count_tokens, prompt_chars
from frugal.routing.single import SingleModelRouter
from frugal.routing.sweep import Outcome, TierRun

__all__ = [
    "BatchProfile",
    "Calibration",
    "CallModel",
    "Cascade",
    "CascadeRouter",
    "FallbackResult",
    "Gate",
    "Outcome",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "SingleModelRouter",
    "TierRun",
    "apply_budget",
    "calibrate",
    "count_tokens",
    "first_answer",
    "prompt_chars",
    "resolve_cascade",
]
