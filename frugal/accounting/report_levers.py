"""What each lever saved over a window, from the ledger: batching, cascades, quantized variants.

- **Batching**: each model version's batches priced as they ran, against the same items run one
  at a time. A batch of 1's busy time is the mean of the window's batches of 1 where there
  are some; else the line through the mean busy time at each batch size seen, at size 1 (no
  lower than one item's share of the smallest batch, no higher than that whole batch); with a
  single batch size and no batch of 1, busy time is taken as proportional to size (no saving
  claimed). Prices are each version's own dollars per busy second (``batches.cost_usd /
  busy_s``), so instance changes between runs are respected.
- **Cascades**: an endpoint whose ``route`` column reads like ``small:1*7>large:1*3`` (items
  answered at each tier); its model dollars against every item run on the last tier, at the
  busy time per item of a batch as large as the first tier's mean batch (routing/
  batch_costs.py's interpolation, over the last tier's measured batches).
- **Quantized variants**: a served version whose artifact is a ``frugal quantize`` output
  (``name.int8-dynamic.onnx``), with its dollars per 1k items beside the original's: another
  version of the same model name, not a quantized file (of several, the one that ran the most
  items in the window).
The cache's savings are the report's own (``saved_usd``, report.py): not recomputed here.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugal.accounting.ledger_schema import SqlReader
from frugal.routing.batch_costs import BatchProfile

# frugal quantize writes ``{stem}.{variant}{suffix}`` (optimize/quantize.py).
VARIANT_FILE = re.compile(r"\.(int8-dynamic|int8-static|fp16|bf16)\.[A-Za-z0-9]+$")
_CASCADE_SEGMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.-]*)\*(\d+)$")


@dataclass(frozen=True, slots=True)
class BatchingSaving:
    model: str  # name:version
    batches: int
    items: int
    actual_usd: float  # the batches' dollars as they ran
    batch1_usd: float  # the same items, one a batch
    method: str  # measured (batches of 1 seen) | fitted | proportional (one size, no claim)

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    @property
    def saved_usd(self) -> float:
        return self.batch1_usd - self.actual_usd


@dataclass(frozen=True, slots=True)
class CascadeSaving:
    endpoint: str
    tiers: tuple[str, ...]
    requests: int
    items: int
    answered: tuple[int, ...]  # items answered at each tier
    actual_usd: float  # the requests' model dollars, every tier's part
    large_only_usd: float | None  # None: the last tier ran no batch in the window

    @property
    def saved_usd(self) -> float | None:
        return None if self.large_only_usd is None else self.large_only_usd - self.actual_usd


@dataclass(frozen=True, slots=True)
class VariantCost:
    model: str  # name:version served from a quantized file
    variant: str  # int8-dynamic, int8-static, fp16, bf16
    items: int
    usd_per_1k_items: float
    original: str | None = None  # another served version of the same name, not quantized
    original_usd_per_1k_items: float | None = None


@dataclass(frozen=True, slots=True)
class Levers:
    batching: list[BatchingSaving]
    cascades: list[CascadeSaving]
    variants: list[VariantCost]


def variant_of(path: Path | str | None) -> str | None:
    """The quantized variant a model file is (``digits.int8-dynamic.onnx`` -> int8-dynamic)."""
    if path is None:
        return None
    found = VARIANT_FILE.search(Path(path).name)
    return found.group(1) if found else None


@dataclass(slots=True)
class _Version:
    sizes: list[int]
    busy_s: list[float]
    cost_usd: list[float]

    def usd_per_busy_s(self) -> float:
        busy = math.fsum(self.busy_s)
        return math.fsum(self.cost_usd) / busy if busy > 0 else 0.0

    def profile(self, model: str) -> tuple[BatchProfile, str]:
        """Mean busy time at each size seen, non-decreasing, with size 1 filled in."""
        by_size: dict[int, list[float]] = {}
        for size, busy in zip(self.sizes, self.busy_s, strict=True):
            by_size.setdefault(size, []).append(busy)
        sizes = sorted(by_size)
        # Means, not medians: over batches of one size alone, busy_at(size) x items is then
        # exactly what they cost (no saving claimed where there was no batching).
        means = list(np.maximum.accumulate([statistics.fmean(by_size[s]) for s in sizes]))
        method = "measured"
        if sizes[0] != 1:
            smallest, busy = sizes[0], float(means[0])
            if len(sizes) >= 2:
                slope, intercept = np.polyfit(sizes, means, 1)
                at_one, method = float(slope + intercept), "fitted"
            else:
                at_one, method = busy / smallest, "proportional"
            sizes, means = [1, *sizes], [min(max(at_one, busy / smallest), busy), *means]
        return BatchProfile(model, tuple(sizes), tuple(float(m) for m in means)), method


def read_levers(
    db: SqlReader, since: float, until: float, variants: Mapping[str, str] | None = None
) -> Levers:
    """Batching, cascade and variant savings over ``[since, until]``. ``variants``: the
    config's quantized versions (``quantized_versions``); none without a config."""
    versions: dict[str, _Version] = {}
    for model, version, size, busy_s, cost_usd in db.execute(
        "SELECT model, version, size, busy_s, cost_usd FROM batches "
        "WHERE ts >= ? AND ts <= ? AND size > 0",
        (since, until),
    ).fetchall():
        v = versions.setdefault(f"{model}:{version}", _Version([], [], []))
        v.sizes.append(int(size))
        v.busy_s.append(float(busy_s))
        v.cost_usd.append(float(cost_usd))
    profiles = {key: v.profile(key) for key, v in versions.items()}
    batching = []
    for key in sorted(versions):
        v, (profile, method) = versions[key], profiles[key]
        items = sum(v.sizes)
        batching.append(BatchingSaving(
            model=key, batches=len(v.sizes), items=items, actual_usd=math.fsum(v.cost_usd),
            batch1_usd=items * profile.busy_at(1) * v.usd_per_busy_s(), method=method,
        ))  # fmt: skip
    return Levers(
        batching=batching,
        cascades=_cascades(db, since, until, versions, profiles),
        variants=_variants(versions, variants or {}),
    )


def _cascades(
    db: SqlReader, since: float, until: float, versions: Mapping[str, _Version],
    profiles: Mapping[str, tuple[BatchProfile, str]],
) -> list[CascadeSaving]:  # fmt: skip
    routes: dict[str, list[tuple[list[tuple[str, int]], float]]] = {}
    for endpoint, route, model_usd in db.execute(
        "SELECT endpoint, route, CASE WHEN model_usd = 0 AND overhead_usd = 0 THEN cost_usd "
        "ELSE model_usd END FROM requests "
        "WHERE ts >= ? AND ts <= ? AND shadow = 0 AND route != ''",
        (since, until),
    ).fetchall():
        segments = [_CASCADE_SEGMENT.match(s) for s in str(route).split(">")]
        if all(segments):
            path = [(m.group(1), int(m.group(2))) for m in segments if m]
            routes.setdefault(endpoint, []).append((path, float(model_usd)))
    found = []
    for endpoint in sorted(routes):
        tiers = max((tuple(t for t, _ in path) for path, _ in routes[endpoint]), key=len)
        if len(tiers) < 2:  # a one-tier route is no cascade (or only its first tier ever ran)
            continue
        answered = [0] * len(tiers)
        actual: list[float] = []
        requests = 0
        for path, usd in routes[endpoint]:
            if tuple(t for t, _ in path) != tiers[: len(path)]:
                continue  # the cascade's tiers changed within the window: the latest shape only
            requests += 1
            actual.append(usd)
            for k, (_, count) in enumerate(path):
                answered[k] += count
        items, large = sum(answered), tiers[-1]
        large_only = None
        if large in versions and tiers[0] in versions:
            first = versions[tiers[0]].sizes  # every item would meet batches this large
            profile = profiles[large][0]  # past its largest batch seen, no cheaper than that
            per_item = profile.busy_per_item(min(sum(first) / len(first), profile.sizes[-1]))
            large_only = items * per_item * versions[large].usd_per_busy_s()
        found.append(CascadeSaving(endpoint, tiers, requests, items, tuple(answered),
                                   math.fsum(actual), large_only))  # fmt: skip
    return found


def _variants(versions: Mapping[str, _Version], variants: Mapping[str, str]) -> list[VariantCost]:
    def per_1k(key: str) -> float:
        v = versions[key]
        return 1000 * math.fsum(v.cost_usd) / sum(v.sizes)

    found = []
    for key in sorted(k for k in variants if k in versions):
        name = key.partition(":")[0]
        originals = [k for k in sorted(versions)
                     if k.partition(":")[0] == name and k not in variants]  # fmt: skip
        # several: the one that served the most items (the version the variant stands beside)
        original = max(originals, key=lambda k: sum(versions[k].sizes), default=None)
        found.append(VariantCost(
            key, variants[key], sum(versions[key].sizes), per_1k(key), original,
            per_1k(original) if original else None,
        ))  # fmt: skip
    return found


def quantized_versions(
    models: Iterable[tuple[str, Path | None, Mapping[str, object]]],
) -> dict[str, str]:
    """``{name:version: variant}`` for each (key, path, options) whose artifact (``path``, or a
    factory's ``onnx_file`` option) is a ``frugal quantize`` output."""
    found = {}
    for key, path, options in models:
        onnx_file = options.get("onnx_file")
        variant = variant_of(path) or variant_of(onnx_file if isinstance(onnx_file, str) else None)
        if variant is not None:
            found[key] = variant
    return found


__all__ = [
    "BatchingSaving",
    "CascadeSaving",
    "Levers",
    "VariantCost",
    "quantized_versions",
    "read_levers",
    "variant_of",
]
