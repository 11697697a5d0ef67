"""Ray for the tests of scale/: skipped where the extra is missing, a failure in CI."""

from __future__ import annotations

import os
import warnings
from types import ModuleType

import pytest


def require_ray() -> ModuleType:
    """The ``ray`` module with Serve; without it: skip locally, fail when ``CI`` is set (a
    missing extra in CI is a broken install step, not a reason to test less)."""
    try:
        # Ray's own modules use APIs pydantic and others have deprecated: not ours to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import ray
            import ray.serve
            import ray.serve.config
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray[serve] is not installed in CI: scripts/install must install [ray]")
        pytest.skip("ray[serve] is not installed (pip install 'frugal[ray]')")
    return ray
