"""Autoscaling policies as data: the one object that the Ray Serve mapping, the simulator and
the reports read, so a policy priced by ``frugal simulate`` is the policy that runs.

A policy decides from **true utilization**: the share of a replica's time that went to the
model (busy slot time) plus the server's own work (HTTP, JSON, admission, ledger), as the cost
ledger prices them (docs/cost-model.md). Deciding from the model's busy time alone under-counts
a small model's load by the server's share, which is most of it.

The named policies trade idle capacity against SLO risk:

- ``conservative``: keeps half of each replica free, adds quickly and removes slowly; the
  dearest, the safest for bursts.
- ``balanced``: the default.
- ``aggressive``: runs replicas hot and removes them soon after load falls; the cheapest when
  load changes slowly, the first to miss an SLO on a burst.

``custom`` gives every threshold itself. The numbers below are starting points, not measured
optima: ``frugal simulate`` prices each on a trace of your traffic (docs/autoscaling.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from frugal.config import AutoscalingConfig, PolicyName


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """When to add or remove replicas of one model version."""

    name: PolicyName
    min_replicas: int  # 0: scale to zero when idle (the next request pays a cold start)
    max_replicas: int
    target_utilization: float  # above it (for upscale_delay_s), replicas are added
    downscale_below: float  # below it (for downscale_delay_s), replicas are removed
    upscale_delay_s: float
    downscale_delay_s: float
    cooldown_s: float  # no scale event this soon after the last one
    scale_step: int  # the most replicas one decision adds or removes
    initial_replicas: int

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"replicas: need 0 <= min ({self.min_replicas}) <= max "
                             f"({self.max_replicas})")  # fmt: skip
        if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError(f"initial_replicas {self.initial_replicas} is outside "
                             f"[{self.min_replicas}, {self.max_replicas}]")  # fmt: skip
        if not 0 <= self.downscale_below < self.target_utilization <= 1:
            raise ValueError(f"need 0 <= downscale_below ({self.downscale_below}) < "
                             f"target_utilization ({self.target_utilization}) <= 1")  # fmt: skip

    @property
    def scales_to_zero(self) -> bool:
        return self.min_replicas == 0

    def desired_replicas(self, replicas: int, utilization: float) -> int:
        """How many replicas would bring ``utilization`` (the fleet's mean, 0..1 per replica,
        measured at ``replicas``) back to the target, within the step and the bounds.

        The delays and the cooldown are the caller's to apply (they need a clock): this is
        only the size of the move, the same arithmetic as Ray Serve's target-based scaling.
        """
        if replicas <= 0:
            # Scaled to zero: any load at all brings one replica back.
            return max(self.min_replicas, 1 if utilization > 0 else 0)
        load = utilization * replicas  # replicas' worth of work
        if utilization > self.target_utilization:
            wanted = -(-load // self.target_utilization)  # ceil
            wanted = min(int(wanted), replicas + self.scale_step)
        elif utilization < self.downscale_below:
            wanted = max(-(-load // self.target_utilization), 0)
            wanted = max(int(wanted), replicas - self.scale_step)
        else:
            wanted = replicas
        return max(self.min_replicas, min(self.max_replicas, wanted))


_DEFAULTS: dict[str, dict[str, Any]] = {
    "conservative": dict(
        min_replicas=1,
        max_replicas=8,
        target_utilization=0.5,
        downscale_below=0.25,
        upscale_delay_s=10.0,
        downscale_delay_s=600.0,
        cooldown_s=60.0,
        scale_step=2,
    ),
    "balanced": dict(
        min_replicas=1,
        max_replicas=8,
        target_utilization=0.7,
        downscale_below=0.4,
        upscale_delay_s=30.0,
        downscale_delay_s=300.0,
        cooldown_s=60.0,
        scale_step=1,
    ),
    "aggressive": dict(
        min_replicas=1,
        max_replicas=8,
        target_utilization=0.85,
        downscale_below=0.6,
        upscale_delay_s=30.0,
        downscale_delay_s=60.0,
        cooldown_s=30.0,
        scale_step=1,
    ),
    # custom's thresholds are required by AutoscalingConfig; these fill only the rest.
    "custom": dict(min_replicas=1, max_replicas=8, scale_step=1),
}

NAMED: tuple[PolicyName, ...] = ("conservative", "balanced", "aggressive")


def policy_from_config(config: AutoscalingConfig) -> ScalingPolicy:
    """The named policy with the fields that ``config`` sets in its place."""
    fields = dict(_DEFAULTS[config.policy])
    for field in dataclasses.fields(ScalingPolicy):
        value = getattr(config, field.name, None)
        if field.name != "name" and value is not None:
            fields[field.name] = value
    fields.setdefault("initial_replicas", max(fields["min_replicas"], 1))
    fields["initial_replicas"] = min(
        max(fields["initial_replicas"], fields["min_replicas"]), fields["max_replicas"]
    )
    return ScalingPolicy(name=config.policy, **fields)


def named_policy(name: PolicyName) -> ScalingPolicy:
    """A named policy with its defaults (``custom`` has none: it raises)."""
    return policy_from_config(AutoscalingConfig(policy=name))


__all__ = ["NAMED", "ScalingPolicy", "named_policy", "policy_from_config"]
