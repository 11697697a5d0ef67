"""The ledger's ``tier_costs`` column: a request's model dollars per model version it ran on.

A cascaded request runs items on several versions (the small tier, then the large one for the
items it escalated). The row is filed under the version that answered; this column keeps each
version's share so ``frugal report --by model`` charges every tier what it ran. Empty: the whole
``model_usd`` belongs to the row's own model:version.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def format_tier_costs(costs: Iterable[tuple[str, float]]) -> str:
    """The ``tier_costs`` column: ``name:version=usd`` per model version, in tier order.

    E.g. ``small:1=1.234e-07;large:1=4.5e-06``. Floats are written in their shortest form that
    reads back bit for bit, so a report's sums equal what was charged. Names and versions never
    hold ``;``, ``=`` or ``:`` (config.py's name pattern); a key that does is a ValueError.
    """
    parts = []
    for key, usd in costs:
        name, _, version = key.partition(":")
        if not (name and version) or any(c in key for c in ";=") or ":" in version:
            raise ValueError(f"{key!r} is not a model name:version")
        parts.append(f"{key}={float(usd)!r}")
    return ";".join(parts)


def parse_tier_costs(text: str) -> list[tuple[str, float]]:
    """The pairs in a ``tier_costs`` value ("" gives none); ValueError if it is malformed."""
    pairs: list[tuple[str, float]] = []
    for part in text.split(";") if text else []:
        key, sep, usd = part.partition("=")
        name, colon, version = key.partition(":")
        if not (sep and colon and name and version) or ":" in version:
            raise ValueError(f"{part!r} is not name:version=usd")
        value = float(usd)  # ValueError names the text
        if not math.isfinite(value):
            raise ValueError(f"{part!r}: dollars must be a finite number")
        pairs.append((key, value))
    return pairs


__all__ = ["format_tier_costs", "parse_tier_costs"]
