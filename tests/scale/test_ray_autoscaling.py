"""The policy -> Ray Serve mapping is a pure function: each field lands where docs/ray.md's
table says, the target follows utilization x concurrency, and Ray's own schema accepts it."""

from __future__ import annotations

import pytest

from frugal.config import AutoscalingConfig
from frugal.scale import NAMED, named_policy, policy_from_config
from frugal.scale.ray_autoscaling import ray_scaling, replica_concurrency
from tests.scale.ray_support import require_ray


def test_each_named_policy_maps_its_bounds_and_delays() -> None:
    for name in NAMED:
        policy = named_policy(name)
        config = ray_scaling(policy, concurrency=32, max_queue=1024).autoscaling_config
        assert config["min_replicas"] == policy.min_replicas
        assert config["max_replicas"] == policy.max_replicas
        assert config["initial_replicas"] == policy.initial_replicas
        assert config["upscale_delay_s"] == policy.upscale_delay_s
        assert config["downscale_delay_s"] == policy.downscale_delay_s
        assert "downscale_to_zero_delay_s" not in config  # none of them scales to zero


def test_target_ongoing_requests_is_utilization_times_concurrency() -> None:
    """A replica running 2 batches of 16 at once holds ~32 requests saturated."""
    concurrency = replica_concurrency(workers=2, max_batch_size=16)
    assert concurrency == 32
    targets = {
        name: ray_scaling(
            named_policy(name), concurrency=concurrency, max_queue=1024
        ).autoscaling_config["target_ongoing_requests"]
        for name in NAMED
    }
    assert targets["balanced"] == pytest.approx(0.7 * 32)
    assert targets["conservative"] < targets["balanced"] < targets["aggressive"]


def test_scale_to_zero_sets_the_delay_of_the_last_replica() -> None:
    policy = policy_from_config(AutoscalingConfig(policy="aggressive", min_replicas=0))
    config = ray_scaling(policy, concurrency=8, max_queue=64).autoscaling_config
    assert config["min_replicas"] == 0
    assert config["downscale_to_zero_delay_s"] == policy.downscale_delay_s


def test_a_replica_may_hold_its_whole_queue_and_never_less_than_its_target() -> None:
    policy = policy_from_config(AutoscalingConfig(policy="custom", target_utilization=1.0,
                                                  downscale_below=0.5, upscale_delay_s=1,
                                                  downscale_delay_s=5, cooldown_s=0))  # fmt: skip
    assert ray_scaling(policy, concurrency=4, max_queue=100).max_ongoing_requests == 100
    assert ray_scaling(policy, concurrency=64, max_queue=8).max_ongoing_requests == 64


def test_custom_thresholds_reach_ray() -> None:
    policy = policy_from_config(
        AutoscalingConfig(policy="custom", min_replicas=2, max_replicas=5, target_utilization=0.5,
                          downscale_below=0.2, upscale_delay_s=3, downscale_delay_s=40,
                          cooldown_s=10, initial_replicas=3)
    )  # fmt: skip
    options = ray_scaling(policy, concurrency=10, max_queue=256).deployment_options()
    assert options["autoscaling_config"] == {
        "min_replicas": 2, "max_replicas": 5, "initial_replicas": 3,
        "target_ongoing_requests": 5.0, "upscale_delay_s": 3.0, "downscale_delay_s": 40.0,
    }  # fmt: skip
    assert options["max_ongoing_requests"] == 256


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        replica_concurrency(0, 8)
    with pytest.raises(ValueError, match="concurrency"):
        ray_scaling(named_policy("balanced"), concurrency=0, max_queue=8)


def test_ray_accepts_every_mapping() -> None:
    """Ray Serve's own AutoscalingConfig validates what the mapping gives (skipped without ray)."""
    serve_config = require_ray().serve.config
    for name in NAMED:
        for zero in (False, True):
            fields = {"policy": name, "min_replicas": 0} if zero else {"policy": name}
            policy = policy_from_config(AutoscalingConfig(**fields))
            scaling = ray_scaling(policy, concurrency=32, max_queue=1024)
            parsed = serve_config.AutoscalingConfig(**scaling.autoscaling_config)
            assert parsed.max_replicas == policy.max_replicas
