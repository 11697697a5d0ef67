"""Cache keys: one per (endpoint, model versions, scope, params, item), equal only for equal inputs.

A key is ``endpoint|`` followed by a 20-byte BLAKE2b digest of a canonical encoding of the model
versions that may answer (sorted), the scope (``global`` or a tenant), the params and the item.
Because the versions are in the key, a new model version never serves the old version's answers:
deploying one moves the endpoint onto fresh keys, and the old ones age out by TTL or eviction.
The readable endpoint prefix lets a shared store (Redis) scan or drop one endpoint's keys.

Canonical bytes decide what counts as the same item:

- a numpy array is its dtype, shape and C-order bytes, so the same values with another dtype or
  shape are another key; byte order is normalized to little-endian, ``-0.0`` to ``0.0`` and every
  NaN to one NaN, so equal floats encode the same;
- a str is its UTF-8 bytes, a bytes object itself, each behind its own type tag;
- anything else is JSON-like text with type kept: keys sorted, no whitespace, a float written as
  its ``repr`` (``1.0``, never ``1``) and ``-0.0`` as ``0.0``, so ``1``, ``1.0``, ``True`` and
  ``"1"`` all differ; numpy scalars count as their Python values; a list and a tuple are the same.

An item of any other type (a set, an object, a structured array) raises TypeError: items reach
the cache already validated by the endpoint's schema, so one that cannot be keyed is a bug.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

DIGEST_SIZE = 20
# Bumped whenever the encoding changes, so a shared store never mixes keys of two encodings.
_PERSON = b"frugal.cache.v1"

_Write = Callable[[bytes], object]


def canonical_bytes(item: Any) -> bytes:
    """The bytes that stand for ``item`` in its cache key: equal exactly when the items are."""
    chunks: list[bytes] = []
    _write_item(item, chunks.append)
    return b"".join(chunks)


def item_key(
    *,
    endpoint: str,
    models: Sequence[str],
    item: Any,
    scope: str = "global",
    params: Mapping[str, Any] | None = None,
) -> bytes:
    """The cache key of one item sent to ``endpoint`` and answered by one of ``models``.

    ``models`` are name:version strings: every version whose answer the endpoint may return.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_PERSON)
    # The header is one self-delimiting list, so no header and item can run into each other.
    header = [sorted(models), scope, dict(params) if params is not None else {}]
    _write_json(header, digest.update)
    _write_item(item, digest.update)
    return endpoint.encode() + b"|" + digest.digest()


def _write_item(item: Any, write: _Write) -> None:
    # The top level tags its kind once; a str or bytes needs no quoting since nothing follows it.
    if isinstance(item, np.ndarray):
        write(b"a")
        _write_array(item, write)
    elif isinstance(item, str):
        write(b"s")
        write(item.encode("utf-8", "surrogatepass"))
    elif isinstance(item, bytes | bytearray | memoryview):
        write(b"b")
        write(bytes(item))
    else:
        write(b"j")
        _write_json(item, write)


def _write_json(value: Any, write: _Write) -> None:
    # Order matters: bool is an int, np.float64 is a float and np.str_ a str.
    if isinstance(value, np.generic):
        _write_json(value.item(), write)
    elif value is None:
        write(b"null")
    elif isinstance(value, bool):
        write(b"true" if value else b"false")
    elif isinstance(value, int):
        write(str(int(value)).encode())
    elif isinstance(value, float):
        write(_float_text(float(value)).encode())
    elif isinstance(value, str):
        write(orjson.dumps(str(value)))
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        write(b"b%d:" % len(data))  # length first: the raw bytes may hold any delimiter
        write(data)
    elif isinstance(value, np.ndarray):
        _write_array(value, write)
    elif isinstance(value, Mapping):
        _write_mapping(value, write)
    elif isinstance(value, list | tuple):
        write(b"[")
        for index, element in enumerate(value):
            if index:
                write(b",")
            _write_json(element, write)
        write(b"]")
    else:
        raise TypeError(f"cannot build a cache key from a {type(value).__name__}: {value!r:.80}")


def _write_mapping(value: Mapping[Any, Any], write: _Write) -> None:
    for name in value:
        if not isinstance(name, str):
            raise TypeError(f"cannot build a cache key from a mapping with a key {name!r:.80}")
    write(b"{")
    for index, name in enumerate(sorted(value)):
        if index:
            write(b",")
        write(orjson.dumps(str(name)))
        write(b":")
        _write_json(value[name], write)
    write(b"}")


def _float_text(value: float) -> str:
    if value == 0.0:
        return "0.0"  # -0.0 == 0.0: one key for both
    if math.isnan(value):
        return "nan"  # every NaN payload and sign is one NaN
    return repr(value)  # shortest round-trip text, always with "." or "e" (or inf)


def _write_array(array: np.ndarray, write: _Write) -> None:
    if array.dtype.fields is not None:
        raise TypeError(f"cannot build a cache key from a structured array ({array.dtype})")
    shape = ",".join(str(n) for n in array.shape).encode()
    if array.dtype.hasobject:  # e.g. BYTES tensors: the buffer holds pointers, key the elements
        write(b"O;%s;" % shape)
        _write_json(array.ravel().tolist(), write)
        return
    little = array.dtype.newbyteorder("<")
    if array.dtype != little:
        array = array.astype(little)
    if array.dtype.kind in "fc":
        # A copy with -0.0 turned into 0.0 (``out`` keeps a 0-d array an array).
        array = np.add(array, array.dtype.type(0), out=np.empty_like(array))
        nan = np.isnan(array)
        if nan.any():
            array[nan] = np.nan
    data = array.tobytes(order="C")
    write(b"%s;%s;%d:" % (array.dtype.str.encode(), shape, len(data)))
    write(data)


__all__ = ["DIGEST_SIZE", "canonical_bytes", "item_key"]
