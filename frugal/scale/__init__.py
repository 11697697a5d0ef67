"""Past one process: autoscaling policies (data), the simulator that prices them on a trace, and
the Ray Serve deployment of the same endpoints (DESIGN.md, "Scaling out")."""

from frugal.scale.policies import NAMED, ScalingPolicy, named_policy, policy_from_config
from frugal.scale.ray_deploy import RayOptions, serve_on_ray

__all__ = [
    "NAMED",
    "RayOptions",
    "ScalingPolicy",
    "named_policy",
    "policy_from_config",
    "serve_on_ray",
]
