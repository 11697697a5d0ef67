"""What one item of a model looks like, checked before the item joins a batch.

A bad item is refused here with the field that is wrong, so it never reaches (or poisons) a batch.
The walks over client JSON here are level by level, never recursive: the client chooses how deep
its lists nest, and neither Python's recursion limit nor numpy's must be what stops them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.types import Item

NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
_KINDS = {"BOOL": "b", "UINT": "iu", "INT": "iu", "FP": "iuf"}  # true is not a number
# Lists within lists in one instance or one tensor's data, and dimensions in a v2 shape: numpy
# holds 64 at most (32 before numpy 2); no model input needs more.
MAX_NESTING_DEPTH = 32
# Elements a v2 shape may describe: far more than any body under server.max_body_bytes carries,
# and small enough that the product of the dimensions is checked before numpy sees it.
MAX_TENSOR_ELEMENTS = 2**31
# The largest finite value of each float datatype: a flat row within it takes the fast path.
_FLOAT_MAX = {name: float(np.finfo(NUMPY_DTYPES[name]).max) for name in ("FP16", "FP32", "FP64")}
_INT_OR_FLOAT = frozenset({int, float})


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype name of a numpy array (BYTES for strings and objects)."""
    for name, dtype in NUMPY_DTYPES.items():
        if array.dtype == dtype:
            return name
    return "BYTES"


class InputSchema:
    """The declared inputs of a model; with none declared, items pass through as sent."""

    def __init__(self, specs: Sequence[TensorSpec]) -> None:
        self.specs = list(specs)
        self._by_name = {s.name: s for s in self.specs}

    def item_from_instance(self, instance: Any, field: str) -> Item:
        """One element of ``instances`` (simple JSON protocol) -> one item."""
        if not self.specs:
            check_depth(instance, field)  # it reaches cache keys and the model as sent
            return instance
        if len(self.specs) == 1:
            return self._row(self.specs[0], instance, field)
        if not isinstance(instance, dict):
            names = ", ".join(self._by_name)
            raise InvalidInput(f"expected an object with inputs {names}", field=field)
        missing = [n for n in self._by_name if n not in instance]
        if missing:
            raise InvalidInput(f"missing input {missing[0]!r}", field=f"{field}.{missing[0]}")
        return {s.name: self._row(s, instance[s.name], f"{field}.{s.name}") for s in self.specs}

    def items_from_tensors(self, tensors: Sequence[dict[str, Any]]) -> list[Item]:
        """Decoded v2 input tensors (name, shape, datatype, data) -> one item per batch row."""
        if not tensors:
            raise InvalidInput("at least one input tensor is required", field="inputs")
        rows_by_name: dict[str, list[Any]] = {}
        count: int | None = None
        for i, tensor in enumerate(tensors):
            name, field = tensor["name"], f"inputs[{i}]"
            spec = self._by_name.get(name)
            if self.specs and spec is None:
                known = ", ".join(self._by_name)
                raise InvalidInput(f"unknown input {name!r}; model takes {known}", field=field)
            rows = self._tensor_rows(spec, tensor, field)
            if count is not None and len(rows) != count:
                raise InvalidInput(
                    f"batch size {len(rows)} differs from the other inputs' {count}",
                    field=f"{field}.shape",
                )
            count = len(rows)
            rows_by_name[name] = rows
        missing = [n for n in self._by_name if n not in rows_by_name]
        if missing:
            raise InvalidInput(f"missing input {missing[0]!r}", field="inputs")
        assert count is not None
        if len(rows_by_name) == 1:
            return next(iter(rows_by_name.values()))
        return [{n: rows[j] for n, rows in rows_by_name.items()} for j in range(count)]

    def _row(self, spec: TensorSpec, value: Any, field: str) -> Item:
        if spec.datatype == "BYTES":
            if len(spec.shape) == 1:
                if not isinstance(value, str):
                    raise InvalidInput("expected a string", field=field)
                return value
            check_depth(value, field)
            return _check_shape(np.asarray(value, dtype=object), spec.shape[1:], field)
        flat = _flat_float_row(value, spec)
        if flat is not None:
            return flat
        if _has_bool(value, field) and spec.datatype != "BOOL":
            raise InvalidInput(f"expected {spec.datatype} values, got true/false", field=field)
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise InvalidInput("ragged or malformed array", field=field) from None
        _check_kind(array, spec.datatype, field)
        return _check_shape(cast(array, spec.datatype, field), spec.shape[1:], field)

    def _tensor_rows(
        self, spec: TensorSpec | None, tensor: dict[str, Any], field: str
    ) -> list[Any]:
        shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
        if spec is not None and datatype != spec.datatype:
            raise InvalidInput(
                f"datatype {datatype} does not match the model's {spec.datatype}",
                field=f"{field}.datatype",
            )
        expected = _check_tensor_shape(shape, f"{field}.shape")
        if datatype == "BYTES":
            check_depth(data, f"{field}.data")
            array = np.asarray(data, dtype=object).reshape(-1)
            if not all(isinstance(v, str) for v in array):
                raise InvalidInput("BYTES data must be strings", field=f"{field}.data")
        else:
            if _has_bool(data, f"{field}.data") and datatype != "BOOL":
                raise InvalidInput(f"expected {datatype} values, got true/false",
                                   field=f"{field}.data")  # fmt: skip
            try:
                array = np.asarray(data)
            except (ValueError, TypeError):
                raise InvalidInput("ragged or malformed data", field=f"{field}.data") from None
            _check_kind(array, datatype, f"{field}.data")
            array = cast(array, datatype, f"{field}.data")
        if array.size != expected:
            raise InvalidInput(
                f"data has {array.size} elements but shape {shape} needs {expected}",
                field=f"{field}.data",
            )
        array = array.reshape(shape)
        if datatype == "BYTES" and len(shape) == 1:
            if spec is not None and len(spec.shape) > 1:
                _check_shape(array[0:0].reshape(-1), spec.shape[1:], f"{field}.shape")
            return [str(v) for v in array]
        if spec is not None:
            _check_shape(array[0], spec.shape[1:], f"{field}.shape")
        return list(array)


def _flat_float_row(value: Any, spec: TensorSpec) -> np.ndarray | None:
    """The common item (one flat row of JSON numbers, at least one a float, for a float input)
    in plain Python checks and one conversion, about a fifth of the general path's numpy calls;
    None for anything else, which the general path checks and refuses with its messages. The
    result is the general path's: float64 first, as ``np.asarray`` makes of such a list, then
    the declared dtype."""
    limit = _FLOAT_MAX.get(spec.datatype)
    if limit is None or type(value) is not list or len(spec.shape) != 2:
        return None
    if spec.shape[1] not in (-1, len(value)):
        return None
    kinds = set(map(type, value))
    if float not in kinds or not kinds <= _INT_OR_FLOAT:  # bool is its own type: not here
        return None
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:  # an int past float64: the general path
        return None
    # One reduction for NaN, inf and values the dtype cannot hold (NaN fails the comparison).
    if not abs(array).max() <= limit:
        return None
    return array.astype(NUMPY_DTYPES[spec.datatype], copy=False)


def _check_tensor_shape(shape: Any, field: str) -> int:
    """The number of elements ``shape`` describes, checked before any array is built: a shape
    whose product overflows int64 (numpy's ``prod`` wraps [2**32, 2**32] to 0) or that has a
    zero dimension (4e9 empty rows) must not reach ``reshape``."""
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidInput("shape must be a list of sizes, batch first", field=field)
    if len(shape) > MAX_NESTING_DEPTH:
        raise InvalidInput(
            f"shape has {len(shape)} dimensions; at most {MAX_NESTING_DEPTH}", field=field
        )
    if shape[0] == 0:
        raise InvalidInput("the batch is empty", field=field)
    if 0 in shape:
        raise InvalidInput(f"shape {shape} has a zero dimension: the tensor holds no values",
                           field=field)  # fmt: skip
    elements = math.prod(shape)  # Python ints: exact, never wraps
    if elements > MAX_TENSOR_ELEMENTS:
        raise InvalidInput(
            f"shape {shape} describes {elements} elements; a tensor holds at most "
            f"{MAX_TENSOR_ELEMENTS}",
            field=field,
        )
    return elements


def check_depth(value: Any, field: str, max_depth: int = MAX_NESTING_DEPTH) -> None:
    """Refuses lists and objects nested more than ``max_depth`` deep (``[[1]]`` is 2), level by
    level: a recursive walk (or ``orjson.dumps``, which stops at 254) would fail on the client's
    choice of depth with a 500 instead of this 400."""
    level = [value]
    for _ in range(max_depth):
        nested: list[Any] = []
        for v in level:
            if isinstance(v, list):
                nested.extend(v)
            elif isinstance(v, dict):
                nested.extend(v.values())
        if not nested:
            return
        level = nested
    if any(isinstance(v, list | dict) for v in level):
        raise _too_deep(field, max_depth)


def _has_bool(value: Any, field: str) -> bool:
    """numpy turns [true, 0] into [1, 0] silently; JSON's true is not a number. Walks only rows
    of rows, level by level, and refuses them nested past MAX_NESTING_DEPTH."""
    if isinstance(value, list) and not (value and isinstance(value[0], list)):
        return bool in set(map(type, value))  # one flat row, the common case: no level walk
    level = [value]
    for _ in range(MAX_NESTING_DEPTH):
        nested: list[Any] = []
        for v in level:
            if isinstance(v, list):
                if v and isinstance(v[0], list):
                    nested.extend(v)
                elif bool in set(map(type, v)):  # C-speed: about 2 us for a row of 64
                    return True
            elif isinstance(v, bool):
                return True
        if not nested:
            return False
        level = nested
    if any(isinstance(v, list) for v in level):
        raise _too_deep(field, MAX_NESTING_DEPTH)
    return any(isinstance(v, bool) for v in level)


def _too_deep(field: str, max_depth: int) -> InvalidInput:
    return InvalidInput(f"lists or objects nested more than {max_depth} levels deep",
                        field=field)  # fmt: skip


def cast(array: np.ndarray, datatype: str, field: str) -> np.ndarray:
    """To the declared dtype, refusing values it cannot hold: a JSON number like 1e300 would
    otherwise become inf in FP32 (and fail inside the model as a 500) and an integer would wrap."""
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if dtype.kind in "iu" and array.dtype.kind in "iu" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise InvalidInput(f"values must be within {datatype}'s {info.min}..{info.max}",
                               field=field)  # fmt: skip
    if dtype.kind == "f":
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidInput(f"values must be finite {datatype} numbers", field=field)
        with np.errstate(over="ignore"):
            out = array.astype(dtype, copy=False)
        if not np.isfinite(out).all():
            limit = float(np.finfo(dtype).max)
            raise InvalidInput(f"values must be finite {datatype} numbers (|x| <= {limit:.3g})",
                               field=field)  # fmt: skip
        return out
    return array.astype(dtype, copy=False)


def _check_kind(array: np.ndarray, datatype: str, field: str) -> None:
    prefix = next(p for p in ("BOOL", "UINT", "INT", "FP") if datatype.startswith(p))
    if array.dtype.kind not in _KINDS[prefix]:
        what = "numbers" if array.dtype.kind in "USO" else f"{array.dtype.kind}-kind values"
        raise InvalidInput(f"expected {datatype} values, got {what}", field=field)


def _check_shape(array: np.ndarray, dims: Sequence[int], field: str) -> np.ndarray:
    if array.ndim != len(dims) or any(
        d != -1 and d != a for d, a in zip(dims, array.shape, strict=True)
    ):
        want = "[" + ", ".join("*" if d == -1 else str(d) for d in dims) + "]"
        raise InvalidInput(f"shape {list(array.shape)} does not match {want}", field=field)
    return array


__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_TENSOR_ELEMENTS",
    "NUMPY_DTYPES",
    "InputSchema",
    "check_depth",
    "datatype_of",
]
