"""Optimization toolkit: plan the cheapest instance from profiles, and gate cost in CI.

Nothing here imports a model runtime: ``plan`` and ``check`` read profile JSON, the price
catalog and frugal.yaml only.
"""

from frugal.optimize.check import EndpointCost, compare, parse_increase, price_config
from frugal.optimize.costing import Projection, project_cost
from frugal.optimize.plan import Plan, PlanInputs, PlanRow, choose_batch, make_plan
from frugal.optimize.profiles import PointRecord, ProfileRecord, read_profile
from frugal.optimize.serverless import BreakEven, ServerlessProjection, break_even

__all__ = [
    "BreakEven",
    "EndpointCost",
    "Plan",
    "PlanInputs",
    "PlanRow",
    "PointRecord",
    "ProfileRecord",
    "Projection",
    "ServerlessProjection",
    "break_even",
    "choose_batch",
    "compare",
    "make_plan",
    "parse_increase",
    "price_config",
    "project_cost",
    "read_profile",
]
