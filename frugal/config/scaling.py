"""frugal.yaml's `models[].autoscaling`: which named policy scales a model's replicas, and the
fields a user overrides. The policies themselves are data in frugal/scale/policies.py."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from frugal.config._base import _Section

PolicyName = Literal["conservative", "balanced", "aggressive", "custom"]


class AutoscalingConfig(_Section):
    """A named policy, and any of its fields set explicitly (``custom`` sets them all).

    Every field left out takes the named policy's value; ``custom`` has no values of its own,
    so it must give the thresholds, delays and cooldown (docs/autoscaling.md).
    """

    policy: PolicyName = "balanced"
    min_replicas: Annotated[int, Field(ge=0)] | None = None  # 0: scale to zero when idle
    max_replicas: Annotated[int, Field(ge=1)] | None = None
    # Utilization (model busy time + the server's own work, as the ledger prices it) that a
    # replica is kept near: above it replicas are added, below downscale_below they go.
    target_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    downscale_below: Annotated[float, Field(ge=0, lt=1)] | None = None
    upscale_delay_s: Annotated[float, Field(ge=0)] | None = None  # load must stay high this long
    downscale_delay_s: Annotated[float, Field(ge=0)] | None = None  # ... or low this long
    cooldown_s: Annotated[float, Field(ge=0)] | None = None  # no decision this soon after one
    scale_step: Annotated[int, Field(ge=1)] | None = None  # replicas added or removed at most
    initial_replicas: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _custom_is_complete(self) -> AutoscalingConfig:
        if self.policy == "custom":
            missing = [name for name in CUSTOM_REQUIRES if getattr(self, name) is None]
            if missing:
                raise ValueError("policy custom has no defaults: set " + ", ".join(missing))
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


CUSTOM_REQUIRES = (
    "target_utilization",
    "downscale_below",
    "upscale_delay_s",
    "downscale_delay_s",
    "cooldown_s",
)

__all__ = ["AutoscalingConfig", "PolicyName"]
