"""Routing: which model versions answer each request (one model, a cascade, or a fallback list;
cascades of upstream LLMs too), and the calibration of a cascade's gates from labeled data."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.calibrate import Calibration, Cascade, calibrate, resolve_cascade
from frugal.routing.cascade import CascadeRouter
from frugal.routing.fallback import FallbackResult, first_answer
from frugal.routing.gates import Gate
from frugal.routing.llm_cascade import (
    CascadeAnswer,
    CascadeSpend,
    LLMCascade,
    LLMTier,
    build_llm_cascades,
    mean_logprob,
)
from frugal.routing.prompt_budget import apply_budget, count_tokens, prompt_chars
from frugal.routing.single import SingleModelRouter
from frugal.routing.sweep import Outcome, TierRun

__all__ = [
    "Calibration",
    "CallModel",
    "Cascade",
    "CascadeAnswer",
    "CascadeRouter",
    "CascadeSpend",
    "FallbackResult",
    "Gate",
    "LLMCascade",
    "LLMTier",
    "Outcome",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "SingleModelRouter",
    "TierRun",
    "apply_budget",
    "build_llm_cascades",
    "calibrate",
    "count_tokens",
    "first_answer",
    "mean_logprob",
    "prompt_chars",
    "resolve_cascade",
]
