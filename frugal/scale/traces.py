"""Traffic traces for ``frugal simulate``: when requests arrive, at which endpoint, with which
cache key, read from CSV or JSONL (your own traffic) or generated in four shapes.

A trace is arrivals only: ``t_s`` (seconds from the trace's start), ``endpoint`` and an optional
``key``. Equal keys on the same endpoint are the same request, so a cache answers the second one
(within its TTL); a row without a key is a request nobody repeats. Nothing about the answer is
in a trace: the simulator takes the cost of serving it from a measured profile.

The generators draw Poisson arrivals on a rate that follows the shape (``steady``, ``diurnal``:
a day compressed into the duration, ``spiky``: bursts on a base, ``ramp``), with ``rate`` the
mean over the whole trace, so shapes of the same rate carry the same number of requests and
their prices compare. Keys are drawn Zipf over ``distinct_keys`` values, the shape real request
popularity takes, so the hit ratio a cache gets on a generated trace is the one a popularity
skew gives rather than a number typed in.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from frugal.errors import InvalidInput

Shape = Literal["steady", "diurnal", "spiky", "ramp"]
SHAPES: tuple[Shape, ...] = get_args(Shape)
FIELDS = ("t_s", "endpoint", "key")

# spiky: bursts fill this share of the time at this multiple of the base rate.
BURST_SHARE = 0.1
BURST_FACTOR = 5.0
BURSTS = 6
# diurnal and ramp swing from (1 - SWING) x rate to (1 + SWING) x rate.
SWING = 0.8


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """Arrivals sorted by time; endpoints and keys are interned (``key_ids`` -1: no key)."""

    t_s: np.ndarray  # float64 seconds from the start, non-decreasing
    endpoint_ids: np.ndarray  # int index into ``endpoints``
    endpoints: tuple[str, ...]
    key_ids: np.ndarray  # int index into ``keys``, -1 for a request without a key
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.t_s.size)

    @property
    def duration_s(self) -> float:
        """From 0 to the last arrival (0 for an empty trace)."""
        return float(self.t_s[-1]) if len(self) else 0.0

    def rows(self) -> Iterable[tuple[float, str, str]]:
        for t, e, k in zip(self.t_s, self.endpoint_ids, self.key_ids, strict=True):
            yield float(t), self.endpoints[e], self.keys[k] if k >= 0 else ""


def from_rows(rows: Iterable[tuple[float, str, str]], *, source: str = "trace") -> Trace:
    """Intern (t_s, endpoint, key) rows; a row out of time order or negative is an error naming
    its position (``source``: what to call the rows in that message)."""
    times: list[float] = []
    endpoint_ids: list[int] = []
    key_ids: list[int] = []
    endpoints: dict[str, int] = {}
    keys: dict[str, int] = {}
    last = 0.0
    for i, (t, endpoint, key) in enumerate(rows, start=1):
        where = f"{source} row {i}"
        if not math.isfinite(t) or t < 0:
            raise InvalidInput(f"{where}: t_s must be a finite number >= 0, got {t!r}", field="t_s")
        if t < last:
            raise InvalidInput(
                f"{where}: t_s {t:g} is before the previous row's {last:g}",
                field="t_s",
                hint="a trace lists arrivals in time order: sort it by t_s",
            )
        if not endpoint:
            raise InvalidInput(f"{where}: endpoint is empty", field="endpoint")
        last = t
        times.append(t)
        endpoint_ids.append(endpoints.setdefault(endpoint, len(endpoints)))
        key_ids.append(keys.setdefault(key, len(keys)) if key else -1)
    return Trace(
        t_s=np.asarray(times, dtype=np.float64),
        endpoint_ids=np.asarray(endpoint_ids, dtype=np.int64),
        endpoints=tuple(endpoints),
        key_ids=np.asarray(key_ids, dtype=np.int64),
        keys=tuple(keys),
    )


def read_trace(path: Path, *, known_endpoints: Sequence[str] | None = None) -> Trace:
    """A ``.csv`` (header ``t_s,endpoint,key``; key may be left out) or ``.jsonl`` trace. Every
    problem is an InvalidInput naming the file, the line and the field; ``known_endpoints`` (a
    config's) makes an endpoint it does not list an error too."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(
            f"--trace {path}: cannot read it: {exc.strerror or exc}", field="--trace"
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"--trace {path}: not UTF-8 text", field="--trace") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text, path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(text, path)
    else:
        raise InvalidInput(f"--trace {path}: expected a .csv or .jsonl file", field="--trace")
    trace = from_rows(rows, source=str(path))
    if known_endpoints is not None:
        unknown = sorted(set(trace.endpoints) - set(known_endpoints))
        if unknown:
            first = next(
                i for i, e in enumerate(trace.endpoint_ids) if trace.endpoints[e] in unknown
            )
            raise InvalidInput(
                f"{path} row {first + 1}: endpoint {unknown[0]!r} is not in the config",
                field="endpoint",
                hint="the config's endpoints: " + ", ".join(known_endpoints),
            )
    return trace


def _number(raw: object, where: str) -> float:
    if isinstance(raw, bool):
        raise InvalidInput(f"{where}: t_s must be a number, got {raw!r}", field="t_s")
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: t_s must be a number, got {raw!r}", field="t_s") from None


def _csv_rows(text: str, path: Path) -> Iterable[tuple[float, str, str]]:
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    for name in ("t_s", "endpoint"):
        if name not in header:
            raise InvalidInput(
                f"{path} line 1: the header has no {name!r} column (got {','.join(header)!r})",
                field=name,
                hint="the header is t_s,endpoint,key (key optional)",
            )
    t_col, e_col = header.index("t_s"), header.index("endpoint")
    k_col = header.index("key") if "key" in header else None
    for values in reader:
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) < len(header):
            raise InvalidInput(
                f"{path} line {line}: {len(values)} fields, the header has {len(header)}",
                field="row",
            )
        key = values[k_col].strip() if k_col is not None else ""
        yield _number(values[t_col].strip(), f"{path} line {line}"), values[e_col].strip(), key


def _jsonl_rows(text: str, path: Path) -> Iterable[tuple[float, str, str]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path} line {line}"
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not JSON ({exc.msg})", field="row") from None
        if not isinstance(row, dict):
            raise InvalidInput(f"{where}: expected an object with t_s, endpoint, key", field="row")
        for name in ("t_s", "endpoint"):
            if name not in row:
                raise InvalidInput(f"{where}: missing field {name!r}", field=name)
        endpoint, key = row["endpoint"], row.get("key")
        if not isinstance(endpoint, str):
            raise InvalidInput(f"{where}: endpoint must be a string", field="endpoint")
        if key is not None and not isinstance(key, str | int):
            raise InvalidInput(f"{where}: key must be a string", field="key")
        yield _number(row["t_s"], where), endpoint, "" if key is None else str(key)


def write_trace(trace: Trace, path: Path) -> None:
    """CSV or JSONL by the suffix (what ``read_trace`` reads back)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise InvalidInput(f"-o {path}: expected a .csv or .jsonl name", field="-o")
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            if suffix == ".csv":
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(FIELDS)
                for t, endpoint, key in trace.rows():
                    writer.writerow((f"{t:.6f}", endpoint, key))
            else:
                for t, endpoint, key in trace.rows():
                    row: dict[str, object] = {"t_s": round(t, 6), "endpoint": endpoint}
                    if key:
                        row["key"] = key
                    out.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise InvalidInput(
            f"-o {path}: cannot write it: {exc.strerror or exc}", field="-o"
        ) from None


def rate_at(
    shape: Shape, rate: float, duration_s: float, t: np.ndarray, bursts: np.ndarray | None = None
) -> np.ndarray:
    """The shape's arrival rate (requests/s) at times ``t``; its mean over the trace is
    ``rate``. ``bursts``: spiky's burst start times."""
    x = t / duration_s
    if shape == "steady":
        return np.full_like(t, rate)
    if shape == "diurnal":  # night at the edges, the day's peak in the middle
        return rate * (1 - SWING * np.cos(2 * np.pi * x))
    if shape == "ramp":
        return rate * (1 - SWING + 2 * SWING * x)
    base = rate / (1 + BURST_SHARE * (BURST_FACTOR - 1))
    out = np.full_like(t, base)
    if bursts is not None and bursts.size:
        length = BURST_SHARE * duration_s / bursts.size
        for start in bursts:
            out[(t >= start) & (t < start + length)] = base * BURST_FACTOR
    return out


def generate(
    shape: Shape,
    *,
    rate: float,
    duration_s: float,
    seed: int,
    endpoints: Sequence[tuple[str, float]] = (("default", 1.0),),
    distinct_keys: int = 0,
    zipf_s: float = 1.0,
) -> Trace:
    """Poisson arrivals at ``rate`` requests/s on average, shaped by ``shape``, reproducible for
    a ``seed``. ``endpoints``: (name, weight) pairs each arrival picks from. ``distinct_keys``
    > 0 gives each arrival a key drawn Zipf(``zipf_s``) over that many values; 0 leaves keys
    out (every request distinct: no cache hit)."""
    if rate <= 0 or duration_s <= 0:
        raise InvalidInput("--rate and --duration must be > 0", field="--rate")
    rng = np.random.default_rng(seed)
    bursts = None
    if shape == "spiky":
        # Bursts start at random, each in its own sixth of the trace so they never overlap.
        slot = duration_s / BURSTS
        length = BURST_SHARE * duration_s / BURSTS
        bursts = np.arange(BURSTS) * slot + rng.uniform(0, slot - length, BURSTS)
    peak = rate * max(1 + SWING, BURST_FACTOR)
    # Thinning (Lewis-Shedler): Poisson at the peak rate, each arrival kept with rate(t)/peak.
    count = int(rng.poisson(peak * duration_s))
    t = np.sort(rng.uniform(0, duration_s, count))
    keep = rng.uniform(0, peak, count) < rate_at(shape, rate, duration_s, t, bursts)
    t = t[keep]
    names = tuple(name for name, _ in endpoints)
    weights = np.asarray([w for _, w in endpoints], dtype=np.float64)
    endpoint_ids = rng.choice(len(names), size=t.size, p=weights / weights.sum())
    if distinct_keys > 0:
        ranks = np.arange(1, distinct_keys + 1, dtype=np.float64)
        popularity = ranks**-zipf_s
        drawn = rng.choice(distinct_keys, size=t.size, p=popularity / popularity.sum())
        # Keys are per endpoint in the cache; intern (endpoint, key) the way read_trace does.
        return from_rows(
            ((float(a), names[e], f"k{k}") for a, e, k in zip(t, endpoint_ids, drawn, strict=True)),
            source="generated",
        )
    return Trace(
        t_s=t,
        endpoint_ids=endpoint_ids.astype(np.int64),
        endpoints=names,
        key_ids=np.full(t.size, -1, dtype=np.int64),
        keys=(),
    )


__all__ = [
    "SHAPES",
    "Shape",
    "Trace",
    "from_rows",
    "generate",
    "rate_at",
    "read_trace",
    "write_trace",
]
