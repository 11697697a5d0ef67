"""The model-level lever: profile a model, quantize it, plan the cheapest instance for it, and
gate its cost in CI.

Nothing here imports torch or onnxruntime at import time; each verb imports what it uses.
``plan`` and ``check`` read profile JSON, the price catalog and frugal.yaml only (``check``, for a
cascade, also a calibration file or the ledger).
``frugal.optimize.tier_runs`` (``calibrate``'s measuring: ``calibrate``, ``record_tiers``) is
imported by its path, not from here: it loads ``frugal.routing``, which ``check`` does not need.
"""

from frugal.optimize.check import EndpointCost, compare, parse_increase
from frugal.optimize.check_pricing import price_config
from frugal.optimize.costing import Projection, project_cost
from frugal.optimize.dataset import Dataset, load_dataset, synthesize_items
from frugal.optimize.endtoend import HttpLevel, HttpProfile, OpenLevel
from frugal.optimize.loadgen import LoadResult, drive, run_async
from frugal.optimize.plan import Plan, PlanInputs, PlanRow, choose_batch, make_plan
from frugal.optimize.profile import (
    FORMAT,
    Profile,
    ProfilePoint,
    hardware_record,
    knee_batch_size,
    max_batch_within_slo,
    measure_batch,
    profile_model,
    suggest_batching,
)
from frugal.optimize.profiles import ProfileRecord, read_profile
from frugal.optimize.server_process import free_port, running_server
from frugal.optimize.serverless import BreakEven, ServerlessProjection, break_even
from frugal.optimize.target import (
    Target,
    input_specs,
    limit_threads,
    load_target,
    resolve_target,
    sample_items,
)
from frugal.optimize.throughput import ReplicaThroughput, replica_throughput

__all__ = [
    "FORMAT",
    "BreakEven",
    "Dataset",
    "EndpointCost",
    "HttpLevel",
    "HttpProfile",
    "LoadResult",
    "OpenLevel",
    "Plan",
    "PlanInputs",
    "PlanRow",
    "Profile",
    "ProfilePoint",
    "ProfileRecord",
    "Projection",
    "ReplicaThroughput",
    "ServerlessProjection",
    "Target",
    "break_even",
    "choose_batch",
    "compare",
    "drive",
    "free_port",
    "hardware_record",
    "input_specs",
    "knee_batch_size",
    "limit_threads",
    "load_dataset",
    "load_target",
    "make_plan",
    "max_batch_within_slo",
    "measure_batch",
    "parse_increase",
    "price_config",
    "profile_model",
    "project_cost",
    "read_profile",
    "replica_throughput",
    "resolve_target",
    "run_async",
    "running_server",
    "sample_items",
    "suggest_batching",
    "synthesize_items",
]
