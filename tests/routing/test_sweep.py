"""The offline cascade replay: candidate thresholds cut the recorded gate scores every way."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from frugal.routing.gates import OPERATORS
from frugal.routing.sweep import candidates


@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from(sorted(OPERATORS)),
)
def test_candidates_make_every_distinct_cut(scores: list[float], op: str) -> None:
    """The short decimal thresholds split the scores in every distinct way, each once."""
    values = np.asarray(scores)
    cuts = {tuple(OPERATORS[op](s, t) for s in scores) for t in candidates(values, op)}
    assert len(cuts) == len(candidates(values, op)) == len(np.unique(values)) + 1
