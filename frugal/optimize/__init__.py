"""The model-level lever: profile a model, quantize it, and (later) prune and plan with it.

Nothing here imports torch or onnxruntime at import time; each verb imports what it uses.
"""

from frugal.optimize.dataset import Dataset, load_dataset, synthesize_items
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
from frugal.optimize.target import (
    Target,
    input_specs,
    limit_threads,
    load_target,
    resolve_target,
    sample_items,
)

__all__ = [
    "FORMAT",
    "Dataset",
    "Profile",
    "ProfilePoint",
    "Target",
    "hardware_record",
    "input_specs",
    "knee_batch_size",
    "limit_threads",
    "load_dataset",
    "load_target",
    "max_batch_within_slo",
    "measure_batch",
    "profile_model",
    "resolve_target",
    "sample_items",
    "suggest_batching",
    "synthesize_items",
]
