"""``--workers auto``: one server process per vCPU this process may use.

Why: for small CPU-bound models the HTTP path is most of the bill, and one Python process runs
it on one core (the GIL); a second process on a 2-vCPU machine served 1.3-1.5x the requests per
second in issue 17's measurements. "The vCPUs this process may use" is the smallest of what
Linux allows it: the CPUs in its affinity mask (``taskset``, a container's cpuset) and its
cgroup's CPU quota (a container's ``--cpus``, a Kubernetes CPU limit), rounded up. A GPU
instance stays at one process: each process would load its own copy of the model onto the one
device, and one process already keeps it busy (docs/serving.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from frugal.errors import InvalidInput

AUTO = "auto"
MAX_WORKERS = 64
# cgroup v2 keeps "<quota|max> <period>" in one file; v1 splits them (a quota of -1: none).
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def parse_workers(value: str | int) -> int | str:
    """``auto`` or a whole number of processes in 1..MAX_WORKERS; InvalidInput naming
    ``--workers`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        try:
            number = int(text)
        except ValueError:
            raise InvalidInput(
                f"{value!r} is neither a number of processes nor `auto`", field="--workers",
                hint=f"give 1..{MAX_WORKERS}, or `auto` for one process per vCPU",
            ) from None  # fmt: skip
    if not 1 <= number <= MAX_WORKERS:
        raise InvalidInput(
            f"{number} is not in 1..{MAX_WORKERS}", field="--workers",
            hint=f"give 1..{MAX_WORKERS}, or `auto` for one process per vCPU",
        )  # fmt: skip
    return number


def cgroup_cpu_limit(
    cpu_max: Path = CGROUP_V2_CPU_MAX,
    v1_quota: Path = CGROUP_V1_QUOTA,
    v1_period: Path = CGROUP_V1_PERIOD,
) -> float | None:
    """The cgroup's CPU quota in CPUs (``200000 100000`` -> 2.0), or None when there is none
    or it cannot be read (no cgroup file, ``max``, a malformed line: no limit known)."""
    try:
        quota_text, _, period_text = cpu_max.read_text().strip().partition(" ")
    except OSError:
        try:
            quota_text = v1_quota.read_text().strip()
            period_text = v1_period.read_text().strip()
        except OSError:
            return None
    if quota_text == "max":
        return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:  # v1's -1: no quota
        return None
    return quota / period


def usable_cpus(
    affinity: int | None = None, quota_cpus: float | None = None, *, read_cgroup: bool = True
) -> int:
    """The vCPUs this process may use: its affinity mask's size, capped by the cgroup quota
    (rounded up: a 1.5-CPU quota keeps two processes busy part of the time), at least 1."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            affinity = os.cpu_count() or 1
    if quota_cpus is None and read_cgroup:
        quota_cpus = cgroup_cpu_limit()
    cpus = affinity
    if quota_cpus is not None:
        cpus = min(cpus, math.ceil(quota_cpus))
    return max(1, cpus)


def resolve_workers(value: int | str, *, gpus: int = 0, cpus: int | None = None) -> int:
    """The number of server processes for ``--workers`` (``auto``: ``usable_cpus()``, or 1 on
    a GPU instance), at most MAX_WORKERS."""
    parsed = parse_workers(value)
    if isinstance(parsed, int):
        return parsed
    if gpus > 0:
        return 1
    return min(MAX_WORKERS, usable_cpus() if cpus is None else max(1, cpus))


__all__ = [
    "AUTO",
    "MAX_WORKERS",
    "cgroup_cpu_limit",
    "parse_workers",
    "resolve_workers",
    "usable_cpus",
]
