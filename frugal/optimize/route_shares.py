"""How many of a cascade endpoint's items reach each tier, for ``frugal check``.

A cascade's cost per item is each tier's cost weighted by the share of items that reach it, and
that share is not in the config: it depends on the gates and on the traffic. It is read from
what was measured, in this order:

1. a ``frugal calibrate --out`` file (``--calibration FILE``): the share of items each tier
   answered at the config's thresholds, which must be the chosen ones, the config's when it
   calibrated, or one of the combinations it swept (else the file is stale: calibrate again);
2. the ledger: the ``route`` column of the endpoint's requests in a window (``--since``), e.g.
   ``small:1*7>large:1*3`` is 10 items that reached ``small`` and 3 that reached ``large``.
   Only requests through exactly the config's tiers count: rule traffic (``rule:...``), a
   fallback's and an older set of tiers' are other routes;
3. the baseline's shares for the endpoint, so a check with neither (a CI job) compares at the
   shares the baseline was priced at.

A baseline whose shares came from a calibration keeps them until another ``--calibration`` is
given: the ledger does not replace them unasked, so a check compares like with like. The caller
(check_pricing.py) applies that order; this module reads one source each.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.errors import InvalidInput

CALIBRATION_FORMAT = "frugal-calibrate/1"  # frugal.routing.calibrate.FORMAT, read as data here


@dataclass(frozen=True, slots=True)
class TierShares:
    """The share of a cascade's items that reach each tier (the first: 1.0), and whence."""

    reach: tuple[float, ...]
    source: str  # "calibration", "ledger" or "baseline"
    detail: str  # what a reader needs to find the numbers again: the file, thresholds, window


def reach_of(answered: Sequence[float]) -> tuple[float, ...]:
    """Tier k is reached by the items answered at k or after: [0.8, 0.2] -> (1.0, 0.2)."""
    total = sum(answered)
    if total <= 0:
        raise ValueError("no item was answered")
    return tuple(sum(answered[k:]) / total for k in range(len(answered)))


@dataclass(frozen=True, slots=True)
class CalibrationFile:
    """The parts of a ``frugal calibrate --out`` file that price a cascade."""

    path: Path
    endpoint: str
    tiers: tuple[str, ...]
    data: Mapping[str, Any]


def read_calibration(path: Path) -> CalibrationFile:
    """Read and check a calibrate result; problems are bad input naming the file."""
    hint = "write one with `frugal calibrate CONFIG --endpoint E --data FILE --out FILE`"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: file not found", field="--calibration", hint=hint) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the calibration: {exc}", field="--calibration",
                           hint=hint) from None  # fmt: skip
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidInput(
            f"{path}: not a calibration (format is {found!r}, expected {CALIBRATION_FORMAT!r})",
            field="--calibration",
            hint=hint,
        )
    try:
        tiers = tuple(str(t["model"]) for t in data["tiers"])
        return CalibrationFile(path, str(data["endpoint"]), tiers, data)
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{path}: malformed calibration ({exc!r})", field="--calibration",
                           hint=hint) from None  # fmt: skip


def shares_from_calibration(
    calibration: CalibrationFile, tiers: Sequence[str], thresholds: Sequence[float]
) -> TierShares:
    """Each tier's reach at the config's ``thresholds``, as the calibration measured it.

    The chosen thresholds and the config's at calibration time were replayed on every item
    (calibration and held-out parts, pooled); any other swept combination on the calibration
    part only.
    """
    path, data = calibration.path, calibration.data
    if tuple(tiers) != calibration.tiers:
        raise InvalidInput(
            f"{path} calibrated tiers {' > '.join(calibration.tiers)}; endpoint "
            f"{calibration.endpoint}'s cascade is now {' > '.join(tiers)}",
            field="--calibration",
            hint="calibrate the cascade as it is now (frugal calibrate ... --out FILE)",
        )
    hint = "run `frugal calibrate ... --out FILE` again at these thresholds (or --write them)"
    try:
        for name in ("chosen", "current"):
            parts = data.get(name) or {}
            pooled = _pooled(data, parts.get("calibration"), parts.get("holdout"))
            if pooled is not None and _same(parts["calibration"]["thresholds"], thresholds):
                text = ", ".join(f"{t:g}" for t in thresholds)
                return TierShares(reach_of(pooled), "calibration",
                                  f"calibration {path} ({name} thresholds {text})")  # fmt: skip
        for point in data.get("points") or []:
            if _same(point["thresholds"], thresholds):
                text = ", ".join(f"{t:g}" for t in thresholds)
                return TierShares(reach_of([float(a) for a in point["answered"]]),
                                  "calibration", f"calibration {path} (swept thresholds "
                                  f"{text}, calibration part)")  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"{path}: malformed calibration ({exc!r})", field="--calibration",
                           hint=hint) from None  # fmt: skip
    raise InvalidInput(
        f"{path} has no result at endpoint {calibration.endpoint}'s thresholds "
        f"{', '.join(f'{t:g}' for t in thresholds)}",
        field="--calibration",
        hint=hint,
    )


def _pooled(data: Mapping[str, Any], calib: Any, held: Any) -> list[float] | None:
    """Answered shares over every labeled item: the two parts weighted by their sizes."""
    if not calib:
        return None
    shares = [float(a) for a in calib["answered"]]
    n_calib, n_held = int(data.get("calibration_items", 0)), int(data.get("holdout_items", 0))
    if not held or n_held <= 0 or n_calib <= 0:
        return shares
    other = [float(a) for a in held["answered"]]
    n = n_calib + n_held
    return [(n_calib * a + n_held * b) / n for a, b in zip(shares, other, strict=True)]


def _same(recorded: Sequence[float], thresholds: Sequence[float]) -> bool:
    return len(recorded) == len(thresholds) and all(
        math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
        for a, b in zip(recorded, thresholds, strict=True)
    )


def shares_from_ledger(
    path: Path, endpoint: str, tiers: Sequence[str], *, since_ts: float, since: str
) -> TierShares | None:
    """Each tier's reach over the endpoint's requests since ``since_ts`` that went through
    exactly these tiers; None when the ledger has none (or is missing, or predates routes)."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        if not {"route", "endpoint", "ts"} <= columns:
            return None
        shadow = " AND shadow = 0" if "shadow" in columns else ""
        rows = db.execute(
            f"SELECT route FROM requests WHERE endpoint = ? AND ts >= ? AND route != ''{shadow}",
            (endpoint, since_ts),
        ).fetchall()
    except sqlite3.Error as exc:
        raise InvalidInput(f"{path}: cannot read the ledger: {exc}", field="--ledger") from None
    finally:
        db.close()
    reached = [0] * len(tiers)
    requests = 0
    for (route,) in rows:
        stopped = parse_cascade(str(route), tiers)
        if stopped is None:
            continue
        requests += 1
        for k in range(len(tiers)):
            reached[k] += sum(stopped[k:])
    if reached[0] == 0:
        return None
    reach = tuple(r / reached[0] for r in reached)
    plural = "" if requests == 1 else "s"
    detail = f"ledger {path} (last {since}: {requests:,} request{plural}, {reached[0]:,} items)"
    return TierShares(reach, "ledger", detail)


def parse_cascade(route: str, tiers: Sequence[str]) -> list[int] | None:
    """Items stopped at each tier, from a ``route`` value of exactly this cascade, else None.

    ``small:1*7>large:1*3`` -> [7, 3]; ``small:1*4`` (all stopped at the first) -> [4, 0].
    A rule's route (``rule:busy...``), a fallback's (``a:1!>b:1``) or other tiers give None.
    """
    stopped = [0] * len(tiers)
    segments = route.split(">")
    if len(segments) > len(tiers):
        return None
    for k, segment in enumerate(segments):
        model, star, count = segment.rpartition("*")
        if not star or model != tiers[k] or not count.isdigit():
            return None
        stopped[k] = int(count)
    return stopped


__all__ = [
    "CalibrationFile",
    "TierShares",
    "parse_cascade",
    "reach_of",
    "read_calibration",
    "shares_from_calibration",
    "shares_from_ledger",
]
