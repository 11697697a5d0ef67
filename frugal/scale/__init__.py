"""Past one process: autoscaling policies (data), the simulator that prices them on a trace, and
the Ray Serve deployment of the same endpoints (DESIGN.md, "Scaling out")."""

from frugal.scale.policies import NAMED, ScalingPolicy, named_policy, policy_from_config

__all__ = ["NAMED", "ScalingPolicy", "named_policy", "policy_from_config"]
