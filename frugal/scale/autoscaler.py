"""The clock around a policy: ``ScalingPolicy.desired_replicas`` says how far to move, this says
when, applying the policy's upscale and downscale delays and its cooldown the way Ray Serve's
autoscaler applies its own (a move happens only after the wish has held for the delay).

Kept apart from the simulator so that its rules are tested on their own and read the same in
the docs as in the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from frugal.scale.policies import ScalingPolicy


@dataclass(slots=True)
class Autoscaler:
    """Feed it the fleet's utilization at each tick; it answers a new replica count or None."""

    policy: ScalingPolicy
    last_event_s: float = -math.inf
    _up_since: float | None = field(default=None, repr=False)
    _down_since: float | None = field(default=None, repr=False)

    def decide(self, now_s: float, replicas: int, utilization: float) -> int | None:
        """The replica count to move to now, or None to stay. ``replicas`` counts those up
        and those starting; ``utilization`` is their mean (0..1) over the last window."""
        desired = self.policy.desired_replicas(replicas, utilization)
        if desired > replicas:
            self._down_since = None
            if self._up_since is None:
                self._up_since = now_s
            waited = now_s - self._up_since >= self.policy.upscale_delay_s
        elif desired < replicas:
            self._up_since = None
            if self._down_since is None:
                self._down_since = now_s
            waited = now_s - self._down_since >= self.policy.downscale_delay_s
        else:
            self._up_since = self._down_since = None
            return None
        if not waited or now_s - self.last_event_s < self.policy.cooldown_s:
            return None
        self.moved(now_s)
        return desired

    def moved(self, now_s: float) -> None:
        """A scale event happened (here, or a start from zero forced by an arrival)."""
        self.last_event_s = now_s
        self._up_since = self._down_since = None


__all__ = ["Autoscaler"]
