"""``frugal distill``'s cascade: the student first, the teacher last, in a frugal.yaml of its
own, and the gate ``frugal calibrate``'s code picks for it on labeled data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugal.config import InstanceConfig, TensorSpec
from frugal.optimize.target import Target

CASCADE_ENDPOINT = "distilled"
DEFAULT_GATE = 0.9  # the student's gate when no labels calibrate one


def models_entry(name: str, path: Path, sha256: str | None, features: int) -> dict[str, Any]:
    """The student's ``models:`` entry for frugal.yaml (path as the cascade config sees it)."""
    spec = TensorSpec(name="X", datatype="FP32", shape=[-1, features])
    return {
        "name": name,
        "version": "1",
        "runtime": "onnx",
        "path": path.name,
        "sha256": sha256,
        "inputs": [spec.model_dump(mode="json")],
    }


def write_cascade(
    out_dir: Path, teacher: Target, entry: dict[str, Any], instance: InstanceConfig
) -> Path:
    """``out_dir/frugal.yaml``: both models and an endpoint cascading student -> teacher."""
    import yaml

    config = teacher.config
    if config.path is not None:  # absolute: the config sits in out_dir, the teacher elsewhere
        config = config.model_copy(update={"path": config.path.resolve()})
    teacher_entry = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    teacher_entry = {"name": config.name, "runtime": config.runtime, **teacher_entry}
    data = {
        "instance": instance.model_dump(mode="json", exclude_none=True),
        "models": [entry, teacher_entry],
        "endpoints": [
            {
                "name": CASCADE_ENDPOINT,
                "route": {
                    "cascade": [
                        {"model": entry["name"], "accept": {"confidence": f">= {DEFAULT_GATE}"}},
                        {"model": config.key},
                    ]
                },
            }
        ],
    }
    path = out_dir / "frugal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def calibrate_gate(
    config_path: Path, labels: Path, max_drop: float, progress: bool
) -> dict[str, Any]:
    """The gate threshold ``frugal calibrate`` picks (its defaults but ``max_drop``), written
    into the config."""
    from frugal.optimize.tier_runs import calibrate
    from frugal.routing.calibrate import resolve_cascade
    from frugal.routing.calibrate_output import write_thresholds

    cascade = resolve_cascade(config_path, CASCADE_ENDPOINT)
    result = calibrate(cascade, labels, max_drop=max_drop, progress=progress)
    teacher = result.singles[-1]["calibration"]
    assert teacher is not None  # the calibration part is never empty
    out: dict[str, Any] = {
        "max_drop": result.target_value,
        "confidence": result.confidence,
        "calibration_items": int(result.calibration_rows.size),
        "holdout_items": int(result.holdout_rows.size),
        "teacher_alone_accuracy": teacher.accuracy,
        "teacher_alone_usd_per_1k": teacher.usd_per_1k,
    }
    chosen = result.chosen
    if chosen is None:
        out.update(threshold=None, written=False)
        return out
    write_thresholds(config_path, CASCADE_ENDPOINT, chosen.thresholds)
    held = result.chosen_holdout
    out.update(
        threshold=chosen.thresholds[0],
        written=True,
        accuracy=chosen.accuracy,
        usd_per_1k=chosen.usd_per_1k,
        escalation_rate=chosen.escalation_rate,
        holdout_accuracy=None if held is None else held.accuracy,
        holdout_escalation_rate=None if held is None else held.escalation_rate,
    )
    return out


__all__ = ["CASCADE_ENDPOINT", "DEFAULT_GATE", "calibrate_gate", "models_entry", "write_cascade"]
