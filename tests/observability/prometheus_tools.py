"""Debian's prometheus and promtool for the alert and Grafana tests: skipped without them, and
failed in CI (``CI`` set), where scripts/install puts them in place."""

from __future__ import annotations

import os
import shutil

import pytest


def require(binary: str) -> str:
    """The path of ``binary`` (prometheus or promtool), or skip (fail in CI) saying why."""
    path = shutil.which(binary)
    if path is None:
        missing = f"{binary} is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}: scripts/install sets it up in CI")
        pytest.skip(missing)
    return path
