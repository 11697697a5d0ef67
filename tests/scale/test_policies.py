"""Policies are data: the named ones resolve from frugal.yaml, overrides win, and the size of a
move follows the target with the step and the bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from frugal.config import AutoscalingConfig
from frugal.scale import NAMED, named_policy, policy_from_config


def test_named_policies_order_by_how_hot_they_run_replicas() -> None:
    targets = [named_policy(name).target_utilization for name in NAMED]
    assert targets == sorted(targets)
    downscale_delays = [named_policy(name).downscale_delay_s for name in NAMED]
    assert downscale_delays == sorted(downscale_delays, reverse=True)


def test_overrides_replace_only_the_fields_they_set() -> None:
    policy = policy_from_config(
        AutoscalingConfig(policy="aggressive", min_replicas=0, max_replicas=3)
    )
    base = named_policy("aggressive")
    assert (policy.min_replicas, policy.max_replicas) == (0, 3)
    assert policy.scales_to_zero
    assert policy.target_utilization == base.target_utilization
    assert policy.initial_replicas == 1


def test_custom_needs_every_threshold() -> None:
    with pytest.raises(ValidationError, match="target_utilization"):
        AutoscalingConfig(policy="custom", target_utilization=0.6)
    policy = policy_from_config(
        AutoscalingConfig(
            policy="custom",
            target_utilization=0.6,
            downscale_below=0.2,
            upscale_delay_s=5,
            downscale_delay_s=50,
            cooldown_s=10,
        )
    )
    assert (policy.name, policy.target_utilization, policy.cooldown_s) == ("custom", 0.6, 10)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValidationError, match="above max_replicas"):
        AutoscalingConfig(min_replicas=4, max_replicas=2)
    with pytest.raises(ValueError, match="downscale_below"):
        policy_from_config(AutoscalingConfig(target_utilization=0.3, downscale_below=0.5))


@pytest.mark.parametrize(
    ("replicas", "utilization", "expected"),
    [
        (2, 0.9, 3),  # 1.8 replicas of work at target 0.7 -> 3 (ceil), step 1 allows 3
        (1, 1.0, 2),  # step 1: never more than one at a time
        (4, 0.2, 3),  # 0.8 replicas of work -> 2, but step 1 removes one
        (3, 0.5, 3),  # between downscale_below and target: stay
        (1, 0.0, 1),  # min_replicas 1 holds
        (8, 1.0, 8),  # max_replicas holds
    ],
)
def test_desired_replicas_for_balanced(replicas: int, utilization: float, expected: int) -> None:
    assert named_policy("balanced").desired_replicas(replicas, utilization) == expected


def test_scale_to_zero_wakes_on_any_load_and_sleeps_when_idle() -> None:
    policy = policy_from_config(AutoscalingConfig(min_replicas=0))
    assert policy.desired_replicas(0, 0.0) == 0
    assert policy.desired_replicas(0, 0.01) == 1
    assert policy.desired_replicas(1, 0.0) == 0
