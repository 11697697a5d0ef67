"""A plan as JSON (``frugal plan --out``, ``"format": "frugal-plan/1"``), for CI and for humans.

Fields are added, never renamed, so a reader of an older plan keeps working: ``choice`` carries
``kind`` (``instance`` or ``serverless``) since serverless can be chosen; ``figures``,
``catalog`` and ``warnings`` say what the numbers rest on.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from frugal.optimize.plan import Option, Plan, PlanRow

PLAN_FORMAT = "frugal-plan/1"


def _row(r: PlanRow) -> dict[str, Any]:
    skip = ("point", "projection", "level")
    out = {k: v for k, v in dataclasses.asdict(r).items() if k not in skip}
    out["kind"] = "instance"
    out["batch_size"] = r.point.batch_size if r.point else None
    out["p99_ms"] = r.point.p99_ms if r.point else None
    out["concurrency"] = r.level.concurrency if r.level else None
    out["server_cpu_s_per_request"] = r.level.server_cpu_s_per_request if r.level else None
    out.update(dataclasses.asdict(r.projection) if r.projection else {})
    return out


def _option(option: Option | None) -> dict[str, Any] | None:
    if option is None:
        return None
    if isinstance(option, PlanRow):
        return _row(option)
    return {"kind": "serverless", **dataclasses.asdict(option)}


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """Inputs, every row, the choice, serverless and the break-even, with their sources."""
    return {
        "format": PLAN_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": dataclasses.asdict(plan.inputs),
        "profiles": [
            {
                "file": p.file,
                "model": p.model_name,
                "sha256": p.model_sha256,
                "hardware_class": p.hardware_class,
                "threads": p.threads,
                "end_to_end": p.http is not None,
            }
            for p in plan.profiles
        ],
        "rows": [_row(r) for r in plan.rows],
        "choice": _option(plan.choice),
        "runners_up": [o.instance if isinstance(o, PlanRow) else o.offer for o in plan.runners_up],
        "verdict": plan.verdict,
        "no_profile": [dataclasses.asdict(m) for m in plan.missing],
        "serverless": [{"kind": "serverless", **dataclasses.asdict(s)} for s in plan.serverless],
        "break_even": [dataclasses.asdict(b) for b in plan.break_evens],
        "figures": list(plan.figures),
        "catalog": list(plan.catalog),
        "warnings": list(plan.warnings),
        "notes": list(plan.notes),
    }


__all__ = ["PLAN_FORMAT", "plan_to_json"]
