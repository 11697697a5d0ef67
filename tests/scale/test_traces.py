"""Traces: generated shapes keep their mean rate and their shape, are the same for a seed, and
files round-trip; a bad file is an error naming its line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frugal.errors import InvalidInput
from frugal.scale.traces import SHAPES, from_rows, generate, read_trace, write_trace


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_keeps_the_mean_rate(shape: str) -> None:
    """Shapes of one rate carry the same number of requests, so their prices compare."""
    trace = generate(shape, rate=200, duration_s=600, seed=3)  # type: ignore[arg-type]
    assert len(trace) / 600 == pytest.approx(200, rel=0.03)
    assert np.all(np.diff(trace.t_s) >= 0)
    assert 0 <= trace.t_s[0] and trace.t_s[-1] <= 600


def _rate_in(trace_t: np.ndarray, start: float, end: float) -> float:
    return float(((trace_t >= start) & (trace_t < end)).sum() / (end - start))


def test_shapes_have_their_shape() -> None:
    """Diurnal peaks mid-way, ramp rises, spiky has bursts far above its median second."""
    day = generate("diurnal", rate=100, duration_s=1000, seed=1).t_s
    assert _rate_in(day, 450, 550) > 3 * _rate_in(day, 0, 100)
    ramp = generate("ramp", rate=100, duration_s=1000, seed=1).t_s
    assert _rate_in(ramp, 900, 1000) > 3 * _rate_in(ramp, 0, 100)
    spiky = generate("spiky", rate=100, duration_s=1000, seed=1).t_s
    per_second = np.histogram(spiky, bins=1000, range=(0, 1000))[0]
    assert per_second.max() > 3 * np.median(per_second)
    steady = generate("steady", rate=100, duration_s=1000, seed=1).t_s
    assert _rate_in(steady, 900, 1000) == pytest.approx(_rate_in(steady, 0, 100), rel=0.2)


def test_a_seed_gives_the_same_trace_and_another_seed_another() -> None:
    a = generate("spiky", rate=50, duration_s=300, seed=7, distinct_keys=100)
    b = generate("spiky", rate=50, duration_s=300, seed=7, distinct_keys=100)
    c = generate("spiky", rate=50, duration_s=300, seed=8, distinct_keys=100)
    assert list(a.rows()) == list(b.rows())
    assert list(a.rows()) != list(c.rows())


def test_zipf_keys_repeat_the_popular_ones_and_no_keys_means_none() -> None:
    trace = generate("steady", rate=100, duration_s=100, seed=1, distinct_keys=50, zipf_s=1.2)
    counts = np.bincount(trace.key_ids)
    assert len(trace.keys) <= 50
    assert counts.max() > 10 * np.median(counts)  # a head of popular keys
    bare = generate("steady", rate=100, duration_s=100, seed=1)
    assert np.all(bare.key_ids == -1) and bare.keys == ()


def test_endpoint_weights_split_arrivals() -> None:
    trace = generate("steady", rate=200, duration_s=100, seed=2,
                     endpoints=[("a", 3.0), ("b", 1.0)])  # fmt: skip
    share_a = float((trace.endpoint_ids == trace.endpoints.index("a")).mean())
    assert share_a == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_files_round_trip(tmp_path: Path, suffix: str) -> None:
    trace = generate("diurnal", rate=20, duration_s=60, seed=4, distinct_keys=30,
                     endpoints=[("a", 1.0), ("b", 1.0)])  # fmt: skip
    path = tmp_path / f"t{suffix}"
    write_trace(trace, path)
    back = read_trace(path)
    assert [(round(t, 6), e, k) for t, e, k in trace.rows()] == list(back.rows())


def test_a_csv_without_a_key_column_has_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("endpoint,t_s\ndigits,0.5\ndigits,1.25\n")
    trace = read_trace(path)
    assert list(trace.rows()) == [(0.5, "digits", ""), (1.25, "digits", "")]


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("t.csv", "t_s,endpoint\n1,a\n0.5,a\n", r"t\.csv row 2: t_s 0\.5 is before"),
        ("t.csv", "t_s,endpoint\n-1,a\n", r"row 1: t_s must be a finite number >= 0"),
        ("t.csv", "time,endpoint\n1,a\n", r"line 1: the header has no 't_s' column"),
        ("t.csv", "t_s,endpoint\nsoon,a\n", r"line 2: t_s must be a number, got 'soon'"),
        ("t.csv", "t_s,endpoint\n1\n", r"line 2: 1 fields, the header has 2"),
        ("t.jsonl", '{"t_s": 1, "endpoint": "a"}\n{"t_s": 2}\n', r"line 2: missing field 'endp"),
        ("t.jsonl", '{"t_s": 1, "endpoint": "a"}\nnope\n', r"line 2: not JSON"),
        ("t.txt", "t_s,endpoint\n", r"expected a \.csv or \.jsonl file"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line_and_field(tmp_path: Path, name: str, text: str,
                                           match: str) -> None:  # fmt: skip
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInput, match=match):
        read_trace(path)


def test_an_endpoint_the_config_lacks_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("t_s,endpoint\n0,digits\n1,images\n")
    assert len(read_trace(path, known_endpoints=["digits", "images"])) == 2
    with pytest.raises(InvalidInput, match=r"row 2: endpoint 'images' is not in the config"):
        read_trace(path, known_endpoints=["digits"])


def test_from_rows_interns_endpoints_and_keys() -> None:
    trace = from_rows([(0.0, "a", "x"), (1.0, "b", "x"), (2.0, "a", "")])
    assert trace.endpoints == ("a", "b") and trace.keys == ("x",)
    assert list(trace.key_ids) == [0, 0, -1]
    assert trace.duration_s == 2.0
