"""Durations and times as the CLI takes them: ``30m``, ``2h``, ``7d``, ``4w`` or an ISO date."""

from __future__ import annotations

import re
import time

import click

DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, param: str) -> float:
    """Seconds in ``30m`` / ``2h`` / ``7d``; a usage error (exit 2) naming ``param`` otherwise."""
    match = DURATION.match(value.strip())
    if not match:
        raise click.BadParameter("use a duration like 30m, 2h, 7d or 4w", param_hint=param)
    return float(match.group(1)) * UNIT_S[match.group(2)]


def parse_since(value: str | None, param: str = "--since") -> float | None:
    """A moment: ``30m`` / ``2h`` / ``7d`` back from now, or an ISO date/time (local unless it
    has an offset). Any window edge (``--since``, ``--until``); ``param`` names it in errors."""
    if value is None:
        return None
    if DURATION.match(value.strip()):
        return time.time() - parse_duration(value, param)
    from datetime import datetime

    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise click.BadParameter(
            "use a duration like 30m, 2h, 7d or a date like 2026-11-01", param_hint=param
        ) from None


__all__ = ["DURATION", "UNIT_S", "parse_duration", "parse_since"]
