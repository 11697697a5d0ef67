"""Labeled (or unlabeled) sample data for the toolkit verbs: profile, quantize, calibrate, prune.

``--data FILE`` is one of:

- ``.csv``: a header line, then one row per item: the feature columns (in the order the model
  takes them) and, for labeled data, a ``label`` column anywhere;
- ``.jsonl``: one object per line, ``{"input": <item>, "label": <y>}`` (``label`` optional), the
  item written as in the simple JSON protocol's ``instances`` (a list of numbers, a sentence, or
  an object of named inputs);
- ``.npz``: arrays ``X`` (items along the first axis) and optionally ``y``.

Items come back in the shape the model's inputs (``TensorSpec``s) expect, so a verb can pass them
straight to ``predict_batch``. Every error names the file and the line, column or array at fault.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.runtimes.schema import NUMPY_DTYPES, InputSchema
from frugal.types import Item

SUFFIXES = (".csv", ".jsonl", ".npz")
LABEL_COLUMN = "label"


@dataclass(frozen=True, slots=True)
class Dataset:
    """Items ready for ``predict_batch`` and their labels (None for unlabeled data)."""

    path: Path
    items: list[Item]
    labels: list[Any] | None

    def __len__(self) -> int:
        return len(self.items)


def load_dataset(
    path: Path, specs: Sequence[TensorSpec], *, require_labels: bool = False
) -> Dataset:
    """Read ``path`` into items shaped for ``specs`` (no specs: items as written)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InvalidInput(
            f"{path}: cannot read data from a {suffix or 'suffix-less'} file",
            hint='give a .csv (header + label column), .jsonl ({"input": ..., "label": ...} '
            "per line) or .npz (arrays X and y)",
        )
    if not path.is_file():
        raise InvalidInput(f"{path}: file not found", hint="--data names the sample data file")
    if suffix == ".csv":
        dataset = _read_csv(path, list(specs))
    elif suffix == ".jsonl":
        dataset = _read_jsonl(path, list(specs))
    else:
        dataset = _read_npz(path, list(specs))
    if not dataset.items:
        raise InvalidInput(f"{path}: no items in the file", hint="the data file is empty")
    if require_labels and dataset.labels is None:
        where = {
            ".csv": f"a `{LABEL_COLUMN}` column",
            ".jsonl": 'a "label" on every line',
            ".npz": "an array y",
        }
        raise InvalidInput(
            f"{path}: has no labels",
            hint=f"this needs labeled data: {where[suffix]}",
        )
    return dataset


def synthesize_items(specs: Sequence[TensorSpec], count: int, *, seed: int = 0) -> list[Item]:
    """``count`` random items of the right shape and dtype, for timing only (never quality).

    Raises InvalidInput when the inputs cannot be made up: text, unknown inner sizes, none
    declared.
    """
    if not specs:
        raise InvalidInput(
            "the model declares no inputs, so sample items cannot be made up",
            hint="pass --data FILE (.csv, .jsonl or .npz) with real items",
        )
    for spec in specs:
        if spec.datatype == "BYTES" or any(d == -1 for d in spec.shape[1:]):
            what = "text" if spec.datatype == "BYTES" else f"shape {spec.shape}"
            raise InvalidInput(
                f"cannot make up items for input {spec.name!r} ({what})",
                hint="pass --data FILE (.csv, .jsonl or .npz) with real items",
            )
    rng = np.random.default_rng(seed)
    columns = {s.name: _random(rng, s, count) for s in specs}
    if len(specs) == 1:
        return list(columns[specs[0].name])
    return [{name: rows[j] for name, rows in columns.items()} for j in range(count)]


def _random(rng: np.random.Generator, spec: TensorSpec, count: int) -> np.ndarray:
    shape = (count, *spec.shape[1:])
    dtype = NUMPY_DTYPES[spec.datatype]
    if spec.datatype.startswith("FP"):
        return rng.random(shape).astype(dtype)
    if spec.datatype == "BOOL":
        return rng.random(shape) < 0.5
    return rng.integers(0, 10, size=shape).astype(dtype)  # small ids/counts are valid for most


def _read_csv(path: Path, specs: list[TensorSpec]) -> Dataset:
    if len(specs) > 1:
        names = ", ".join(s.name for s in specs)
        raise InvalidInput(
            f"{path}: the model takes several inputs ({names}); a CSV row holds one",
            hint="write the data as .jsonl with an object of named inputs per line",
        )
    spec = specs[0] if specs else None
    try:
        with path.open(newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path}: not a readable CSV file: {exc}") from None
    rows = [(i, r) for i, r in enumerate(lines, start=1) if r and any(c.strip() for c in r)]
    if not rows:
        raise InvalidInput(f"{path}: the file is empty", hint="write a header line, then rows")
    header = [h.strip() for h in rows[0][1]]
    if all(_is_number(h) for h in header):
        raise InvalidInput(
            f"{path}: line 1 is not a header",
            hint=f"the first line names the columns: the features and `{LABEL_COLUMN}`",
        )
    label_at = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
    features = [j for j in range(len(header)) if j != label_at]
    text = spec is not None and spec.datatype == "BYTES"
    want = 1 if text else _row_size(spec)
    if want is not None and len(features) != want:
        raise InvalidInput(
            f"{path}: {len(features)} feature column(s), but input {spec.name!r} "  # type: ignore[union-attr]
            f"takes {want} value(s) per item (shape {spec.shape})",  # type: ignore[union-attr]
            hint=f"one column per value, plus an optional `{LABEL_COLUMN}` column",
        )
    items: list[Item] = []
    labels: list[Any] = []
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise InvalidInput(
                f"{path}: line {line}: {len(row)} cells, but the header has {len(header)}"
            )
        if label_at is not None:
            labels.append(_label(row[label_at]))
        if text:
            items.append(row[features[0]])
            continue
        values = []
        for j in features:
            cell = row[j].strip()
            if not _is_number(cell):
                raise InvalidInput(
                    f"{path}: line {line}, column {header[j]!r}: {cell!r} is not a number"
                )
            values.append(float(cell))
        items.append(_shaped(np.asarray(values), spec))
    return Dataset(path, items, labels if label_at is not None else None)


def _read_jsonl(path: Path, specs: list[TensorSpec]) -> Dataset:
    schema = InputSchema(specs)
    items: list[Item] = []
    labels: list[Any] = []
    labeled = 0
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(
                    f"{path}: line {line}: not JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(record, dict) or "input" not in record:
                raise InvalidInput(
                    f'{path}: line {line}: expected an object with an "input" key',
                    hint='write {"input": <item>, "label": <y>} per line',
                )
            try:
                item = schema.item_from_instance(record["input"], "input")
            except InvalidInput as exc:
                raise InvalidInput(
                    f"{path}: line {line}, {exc.field or 'input'}: {exc.message}",
                    hint=exc.hint,
                ) from None
            if not specs and isinstance(record["input"], list):
                item = np.asarray(record["input"], dtype=np.float32)
            items.append(item)
            if "label" in record:
                labeled += 1
                labels.append(record["label"])
            elif labeled:
                raise InvalidInput(f'{path}: line {line}: no "label", unlike the lines before')
    if labeled and labeled != len(items):
        raise InvalidInput(f'{path}: {len(items) - labeled} line(s) have no "label"')
    return Dataset(path, items, labels if labeled else None)


def _read_npz(path: Path, specs: list[TensorSpec]) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not a readable .npz file: {exc}") from None
    if "X" not in arrays:
        raise InvalidInput(
            f"{path}: no array X (it has {', '.join(arrays) or 'none'})",
            hint="save the items as X and the labels as y: np.savez(path, X=x, y=y)",
        )
    x = arrays["X"]
    if len(specs) > 1:
        raise InvalidInput(
            f"{path}: the model takes several inputs; an .npz X holds one",
            hint="write the data as .jsonl with an object of named inputs per line",
        )
    if x.ndim == 0:
        raise InvalidInput(f"{path}: array X is a scalar; items go along its first axis")
    spec = specs[0] if specs else None
    if spec is not None and spec.datatype != "BYTES":
        dims = spec.shape[1:]
        if x.ndim - 1 != len(dims) or any(
            d != -1 and d != a for d, a in zip(dims, x.shape[1:], strict=True)
        ):
            raise InvalidInput(
                f"{path}: array X has items of shape {list(x.shape[1:])}, but input "
                f"{spec.name!r} takes {dims}",
            )
        if x.dtype.kind not in "biuf":
            raise InvalidInput(f"{path}: array X holds {x.dtype}, not numbers")
        x = x.astype(NUMPY_DTYPES[spec.datatype], copy=False)
    items: list[Item] = [str(v) for v in x] if spec and spec.datatype == "BYTES" else list(x)
    labels = None
    if "y" in arrays:
        y = arrays["y"]
        if y.shape[:1] != x.shape[:1]:
            raise InvalidInput(f"{path}: y has {y.shape[0]} labels but X has {x.shape[0]} items")
        labels = y.tolist()
    return Dataset(path, items, labels)


def _row_size(spec: TensorSpec | None) -> int | None:
    if spec is None or any(d == -1 for d in spec.shape[1:]):
        return None
    return math.prod(spec.shape[1:])


def _shaped(values: np.ndarray, spec: TensorSpec | None) -> np.ndarray:
    if spec is None:
        return values.astype(np.float32)
    return values.reshape(spec.shape[1:]).astype(NUMPY_DTYPES[spec.datatype])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label(cell: str) -> Any:
    """Labels are compared with predictions, so ``"3"`` reads as 3 and ``"0.5"`` as 0.5."""
    cell = cell.strip()
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            continue
    return cell


__all__ = ["LABEL_COLUMN", "SUFFIXES", "Dataset", "load_dataset", "synthesize_items"]
