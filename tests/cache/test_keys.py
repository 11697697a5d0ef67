"""Cache keys: equal inputs give one key, and anything that could change the answer changes it."""

from __future__ import annotations

import copy
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from frugal.cache.keys import DIGEST_SIZE, canonical_bytes, item_key
from tests.strategies import (
    endpoint_names,
    float_rows,
    json_values,
    key_params,
    model_lists,
    scopes,
)

PROPERTY = settings(max_examples=60, deadline=None)  # keeps the file near 2 s


def _reordered(value: Any) -> Any:
    """The same value with every dict's insertion order reversed."""
    if isinstance(value, dict):
        return {name: _reordered(value[name]) for name in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(element) for element in value]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal with types kept: 1, 1.0 and True differ; -0.0 and 0.0 do not."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[name], b[name]) for name in a)
    return bool(a == b)


def _key(item: Any, **overrides: Any) -> bytes:
    parts: dict[str, Any] = {"endpoint": "digits", "models": ["digits-small:1"], "item": item}
    return item_key(**(parts | overrides))


@PROPERTY
@given(endpoint_names, model_lists, scopes, key_params, json_values)
def test_key_is_deterministic(
    endpoint: str, models: list[str], scope: str, params: dict[str, Any], item: Any
) -> None:
    """The same inputs, rebuilt as fresh objects, give the same key."""
    first = item_key(endpoint=endpoint, models=models, item=item, scope=scope, params=params)
    again = item_key(
        endpoint=endpoint,
        models=list(models),
        item=copy.deepcopy(item),
        scope=scope,
        params=copy.deepcopy(params),
    )
    assert first == again


@PROPERTY
@given(endpoint_names, model_lists, json_values)
def test_key_starts_with_endpoint(endpoint: str, models: list[str], item: Any) -> None:
    """A key is the endpoint, a bar, and a fixed-size digest."""
    key = item_key(endpoint=endpoint, models=models, item=item)
    assert key.startswith(endpoint.encode() + b"|")
    assert len(key) == len(endpoint) + 1 + DIGEST_SIZE


@PROPERTY
@given(json_values, key_params)
def test_dict_order_does_not_change_key(item: Any, params: dict[str, Any]) -> None:
    """Dicts with the same pairs in another order, in the item or the params, give one key."""
    assert _key(item, params=params) == _key(_reordered(item), params=_reordered(params))


@PROPERTY
@given(model_lists, st.randoms(use_true_random=False), json_values)
def test_model_order_does_not_change_key(models: list[str], rng: Any, item: Any) -> None:
    """The models that may answer are a set: their order does not change the key."""
    shuffled = list(models)
    rng.shuffle(shuffled)
    assert _key(item, models=models) == _key(item, models=shuffled)


@PROPERTY
@given(st.data(), st.sampled_from(["endpoint", "models", "scope", "params"]), json_values)
def test_each_part_changes_key(data: st.DataObject, part: str, item: Any) -> None:
    """Another endpoint, model version list, scope or params gives another key."""
    strategy = {
        "endpoint": endpoint_names,
        "models": model_lists.map(sorted),
        "scope": scopes,
        "params": key_params,
    }[part]
    a, b = data.draw(strategy), data.draw(strategy)
    assume(not _same(a, b))
    assert _key(item, **{part: a}) != _key(item, **{part: b})


def test_new_model_version_changes_key() -> None:
    """A new version of the same model never reads the old version's entries."""
    assert _key([1.0, 2.0], models=["digits:1"]) != _key([1.0, 2.0], models=["digits:2"])


@PROPERTY
@given(json_values, json_values)
def test_canonical_bytes_equal_exactly_for_equal_values(a: Any, b: Any) -> None:
    """Two JSON values share canonical bytes exactly when they are equal with their types."""
    assert (canonical_bytes(a) == canonical_bytes(b)) == _same(a, b)


@PROPERTY
@given(st.integers())
def test_int_float_str_and_bool_differ(n: int) -> None:
    """``n``, ``float(n)`` and ``str(n)`` are three keys, alone or inside a list."""
    forms: list[Any] = [n, str(n)]
    if abs(n) < 2**53:
        forms.append(float(n))
    assert len({_key(form) for form in forms}) == len(forms)
    assert len({_key([form]) for form in forms}) == len(forms)


def test_one_and_true_and_string_one_differ() -> None:
    """1, 1.0, True and "1" are four keys, and so are 0, 0.0, False and None."""
    assert len({_key(1), _key(1.0), _key(True), _key("1")}) == 4
    assert len({_key(0), _key(0.0), _key(False), _key(None)}) == 4


@PROPERTY
@given(float_rows)
def test_float32_and_float64_rows_differ(values: list[float]) -> None:
    """The same values as a float32 row and as a float64 row are two keys."""
    row32 = np.array(values, dtype=np.float32)
    assert _key(row32) != _key(row32.astype(np.float64))
    assert _key(row32) == _key(row32.copy())


def test_negative_zero_is_zero() -> None:
    """-0.0 and 0.0 give one key, alone, nested, or in arrays of any float type."""
    assert _key(-0.0) == _key(0.0)
    assert _key({"x": [-0.0]}) == _key({"x": [0.0]})
    assert _key(np.float32(-0.0)) == _key(0.0)
    for dtype in (np.float16, np.float32, np.float64, np.complex64):
        assert _key(np.array([-0.0, 1.0], dtype=dtype)) == _key(np.array([0.0, 1.0], dtype=dtype))
    assert _key(np.array(-0.0)) == _key(np.array(0.0))


def test_every_nan_is_one_nan() -> None:
    """NaNs of any sign or payload give one key, as Python floats and in arrays."""
    other_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
    assert _key(float("nan")) == _key(other_nan)
    row = np.array([np.nan, 1.0])
    assert _key(row) == _key(np.array([other_nan, 1.0]))
    assert _key(row) == _key(-row * np.array([1.0, -1.0]))


def test_array_shape_and_dtype_are_in_key() -> None:
    """The same bytes with another shape or dtype are another key."""
    flat = np.arange(4, dtype=np.int32)
    assert _key(flat) != _key(flat.reshape(2, 2))
    assert _key(flat) != _key(flat.view(np.float32))
    assert _key(flat) != _key(flat.tolist())


def test_array_layout_and_byte_order_are_not_in_key() -> None:
    """A strided or big-endian array has the key of the same values in a plain array."""
    grid = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert _key(grid[:, ::2]) == _key(np.ascontiguousarray(grid[:, ::2]))
    assert _key(grid.T) == _key(grid.T.copy())
    assert _key(grid.astype(">f8")) == _key(grid)


def test_object_arrays_key_their_elements() -> None:
    """A BYTES tensor (object array) is keyed by its elements, not by the pointers it holds."""
    first = np.array(["a cat", "a dog"], dtype=object)
    second = np.array(["a " + "cat", "a dog"], dtype=object)
    assert _key(first) == _key(second)
    assert _key(first) != _key(np.array(["a cat", "a cow"], dtype=object))


def test_numpy_scalars_are_their_python_values() -> None:
    """A numpy scalar is keyed as the Python value it holds."""
    assert _key(np.int64(3)) == _key(3)
    assert _key(np.float64(0.5)) == _key(0.5)
    assert _key(np.bool_(True)) == _key(True)
    assert _key({"p": [np.float32(0.25)]}) == _key({"p": [0.25]})


def test_sequences_and_text_forms() -> None:
    """A tuple is keyed as a list; str and bytes of the same text differ; dict items count."""
    assert _key((1, "a")) == _key([1, "a"])
    assert _key("cat") != _key(b"cat")
    assert _key({"name": "cat"}) != _key({"name": "cat", "age": None})
    assert _key({"a": 1}) != _key({"b": 1})


def test_dicts_inside_rows_keep_their_arrays_apart() -> None:
    """A dict of named rows (a multi-input item) keys each row under its name."""
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    assert _key({"x": a, "y": b}) == _key({"y": b, "x": a.copy()})
    assert _key({"x": a, "y": b}) != _key({"x": b, "y": a})


@pytest.mark.parametrize(
    "item", [{1, 2}, object(), {1: "a"}, np.zeros(2, dtype=[("a", "f4")])], ids=repr
)
def test_unkeyable_items_raise(item: Any) -> None:
    """An item with no canonical form (set, object, non-str dict key, structured) is refused."""
    with pytest.raises(TypeError, match="cache key"):
        _key(item)
