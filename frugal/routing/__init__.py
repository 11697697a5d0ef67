"""Routing: which model versions answer each request (one model, a cascade, or a fallback list)."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.cascade import CascadeRouter
from frugal.routing.fallback import FallbackResult, first_answer
from frugal.routing.gates import Gate
from frugal.routing.prompt_budget import apply_budget, count_tokens, prompt_chars
from frugal.routing.single import SingleModelRouter

__all__ = [
    "CallModel",
    "CascadeRouter",
    "FallbackResult",
    "Gate",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "SingleModelRouter",
    "apply_budget",
    "count_tokens",
    "first_answer",
    "prompt_chars",
]
