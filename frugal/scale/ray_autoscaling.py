"""A frugal scaling policy as Ray Serve's ``autoscaling_config``: a pure function, so the
mapping is tested without Ray and the same ``ScalingPolicy`` drives the simulator.

Ray Serve scales on **ongoing requests per replica** (running plus queued at the replica); a
frugal policy on **true utilization** (the share of a replica's slots busy). Both are loads
of one replica, linked by Little's law: a replica whose batcher runs ``workers`` batches of
up to ``max_batch_size`` items at once, each answered in about one batch time, holds about
``workers x max_batch_size`` requests when it is saturated, and ``u`` times that at
utilization ``u``. So ``target_ongoing_requests = target_utilization x concurrency`` with
``concurrency = workers x max_batch_size``. Near saturation, queueing makes the ongoing count
grow faster than utilization, so Ray adds replicas a little before the policy would: the safe
side. (A request of several items counts once in Ray's figure: a client that sends big
requests should lower ``target_utilization``.)

What Ray has no knob for is said, not approximated: ``downscale_below`` (Ray shrinks toward
the target, with ``downscale_delay_s`` as its hysteresis), ``cooldown_s`` (each of Ray's
decisions already waits out its delay) and ``scale_step`` (Ray moves straight to the
replicas its target asks for). ``frugal simulate`` prices the policy with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from frugal.scale.policies import ScalingPolicy

# Policy fields that Ray Serve's autoscaler has no counterpart for (see the module docstring).
NOT_MAPPED = ("downscale_below", "cooldown_s", "scale_step")


@dataclass(frozen=True, slots=True)
class RayScaling:
    """A model deployment's replica options: ``autoscaling_config`` and the per-replica bound."""

    autoscaling_config: dict[str, Any]
    # Requests Ray lets one replica hold: the batcher's own queue bound (batching.max_queue)
    # refuses past it, with frugal's 503 + Retry-After, so Ray never queues in front of it.
    max_ongoing_requests: int

    def deployment_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Deployment.options``."""
        return {
            "autoscaling_config": dict(self.autoscaling_config),
            "max_ongoing_requests": self.max_ongoing_requests,
        }


def replica_concurrency(workers: int, max_batch_size: int) -> int:
    """Requests one replica answers at once when saturated: its batches in flight x their size."""
    if workers < 1 or max_batch_size < 1:
        raise ValueError(f"workers ({workers}) and max_batch_size ({max_batch_size}) must be >= 1")
    return workers * max_batch_size


def ray_scaling(policy: ScalingPolicy, *, concurrency: int, max_queue: int) -> RayScaling:
    """Ray Serve's options for a model version's deployment under ``policy``.

    ``concurrency``: ``replica_concurrency`` of one replica; ``max_queue``: its
    ``batching.max_queue`` (items, so at least as many requests).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    if max_queue < 1:
        raise ValueError(f"max_queue must be >= 1, not {max_queue}")
    target = policy.target_utilization * concurrency
    config: dict[str, Any] = {
        "min_replicas": policy.min_replicas,
        "max_replicas": policy.max_replicas,
        "initial_replicas": policy.initial_replicas,
        "target_ongoing_requests": target,
        "upscale_delay_s": policy.upscale_delay_s,
        "downscale_delay_s": policy.downscale_delay_s,
    }
    if policy.scales_to_zero:
        # The last replica goes after the same quiet spell as the others; the next request
        # then waits for a cold start (model load), which the ledger bills as start-up.
        config["downscale_to_zero_delay_s"] = policy.downscale_delay_s
    # A replica must be allowed more ongoing requests than its target, or Ray's target could
    # never be reached (Ray warns); at least a full batch's worth, at most the queue bound.
    most = max(max_queue, concurrency, int(-(-target // 1)))
    return RayScaling(config, max_ongoing_requests=most)


__all__ = ["NOT_MAPPED", "RayScaling", "ray_scaling", "replica_concurrency"]
