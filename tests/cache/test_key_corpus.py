"""Cache keys over a corpus: distinct inputs never collide, equal inputs always meet."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
from sklearn.datasets import load_digits

from frugal.cache import item_key


def key(item: object) -> bytes:
    return item_key(endpoint="e", models=["m:1"], item=item)


def test_no_collisions_over_twenty_thousand_distinct_inputs() -> None:
    """Digits rows, their float64 twins, strings, numbers and nested objects: all keys differ."""
    rows = load_digits().data.astype(np.float32)
    corpus: list[object] = [row for row in rows]
    corpus += [row.astype(np.float64) for row in rows[:500]]
    corpus += [f"sentence number {i}" for i in range(7000)]
    corpus += list(range(5000)) + [i + 0.5 for i in range(5000)]
    corpus += [{"a": i, "b": [i, str(i)]} for i in range(2000)]
    unique_rows = {row.tobytes() for row in rows}
    expected = len(corpus) - (len(rows) - len(unique_rows))  # digits has duplicate images
    assert len({key(item) for item in corpus}) == expected
    assert expected > 20_000


def test_json_spellings_of_one_input_share_a_key() -> None:
    """Whitespace, key order and number spelling in the JSON body do not change the key."""
    spellings = [
        b'{"x": [1.0, 2.5e0, -0.0], "y": {"b": 1, "a": "s"}}',
        b'{"y":{"a":"s","b":1},"x":[1.0,2.5,0.0]}',
        b'{ "x" : [ 1.00, 25e-1, 0.0 ] , "y" : { "a" : "s" , "b" : 1 } }',
    ]
    keys = {key(orjson.loads(s)) for s in spellings}
    assert len(keys) == 1
    for a, b in itertools.combinations(["1", "1.0", "true", '"1"'], 2):
        assert key(orjson.loads(a)) != key(orjson.loads(b))
