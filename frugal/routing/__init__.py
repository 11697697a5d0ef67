"""Routing: which model versions answer each request (one model, a cascade, a fallback list, a
split of versions; cascades of upstream LLMs too), the selection rules in front of them, shadow
comparison and canary rollback, and the choice of a cascade's gate thresholds from what its tiers
did on labeled data (the measuring is ``frugal.optimize.tier_runs``)."""

from frugal.routing.base import CallModel, RoutedResult, Router, RouteRequest
from frugal.routing.batch_costs import BatchProfile
from frugal.routing.calibrate import (
    Calibration,
    Cascade,
    TierRecording,
    choose_thresholds,
    resolve_cascade,
)
from frugal.routing.cascade import CascadeRouter
from frugal.routing.fallback import FallbackResult, first_answer
from frugal.routing.gates import Gate
from frugal.routing.llm_cascade import (
    CascadeAnswer,
    CascadeSpend,
    LLMCascade,
    LLMTier,
    LocalCall,
    LocalRun,
    answer_text,
    build_llm_cascades,
    chat_text,
    mean_logprob,
)
from frugal.routing.prompt_budget import apply_budget, count_tokens, prompt_chars
from frugal.routing.rollback import CanaryWatch
from frugal.routing.rules import Load, Rule, RuleRouter
from frugal.routing.shadow import agree, compare
from frugal.routing.single import SingleModelRouter
from frugal.routing.split import SplitRouter
from frugal.routing.sweep import Outcome, TierRun

__all__ = [
    "BatchProfile",
    "Calibration",
    "CallModel",
    "CanaryWatch",
    "Cascade",
    "CascadeAnswer",
    "CascadeRouter",
    "CascadeSpend",
    "FallbackResult",
    "Gate",
    "LLMCascade",
    "LLMTier",
    "Load",
    "LocalCall",
    "LocalRun",
    "Outcome",
    "RouteRequest",
    "RoutedResult",
    "Router",
    "Rule",
    "RuleRouter",
    "SingleModelRouter",
    "SplitRouter",
    "TierRecording",
    "TierRun",
    "agree",
    "answer_text",
    "apply_budget",
    "build_llm_cascades",
    "chat_text",
    "choose_thresholds",
    "compare",
    "count_tokens",
    "first_answer",
    "mean_logprob",
    "prompt_chars",
    "resolve_cascade",
]
