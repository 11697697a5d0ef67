"""--data files: csv, jsonl and npz read into items shaped for the model, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frugal.config import TensorSpec
from frugal.errors import InvalidInput
from frugal.optimize import load_dataset, synthesize_items
from tests.optimize.conftest import Digits, write_csv

PIXELS = [TensorSpec(name="pixels", datatype="FP32", shape=[-1, 64])]
TEXT = [TensorSpec(name="text", datatype="BYTES", shape=[-1])]


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_the_three_formats_give_the_same_items_and_labels(tmp_path: Path, digits01: Digits) -> None:
    """csv, jsonl and npz of the same rows load to equal float32 items of shape (64,) and labels."""
    x, y = digits01[0][:20], digits01[1][:20]
    csv_path = write_csv(tmp_path / "d.csv", x, y)
    jsonl_path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"input": r.tolist(), "label": int(v)} for r, v in zip(x, y, strict=True)],
    )
    np.savez(tmp_path / "d.npz", X=x, y=y)
    for path in (csv_path, jsonl_path, tmp_path / "d.npz"):
        data = load_dataset(path, PIXELS, require_labels=True)
        assert len(data) == 20 and data.labels == y.tolist()
        assert data.items[0].shape == (64,) and data.items[0].dtype == np.float32
        np.testing.assert_allclose(np.stack(data.items), x, rtol=1e-5)


def test_items_take_the_declared_shape(tmp_path: Path, digits01: Digits) -> None:
    """64 CSV columns become 8x8 items for an input of shape [-1, 8, 8]."""
    path = write_csv(tmp_path / "d.csv", digits01[0][:3])
    data = load_dataset(path, [TensorSpec(name="image", shape=[-1, 8, 8])])
    assert data.items[0].shape == (8, 8) and data.labels is None


def test_jsonl_sentences_without_labels(tmp_path: Path) -> None:
    """A jsonl of sentences loads as strings, unlabeled."""
    path = write_jsonl(tmp_path / "s.jsonl", [{"input": "a cat"}, {"input": "a dog"}])
    data = load_dataset(path, TEXT)
    assert data.items == ["a cat", "a dog"] and data.labels is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.txt", "x", "cannot read data from a .txt file"),
        ("d.csv", "", "the file is empty"),
        ("d.csv", "1,2,3\n4,5,6\n", "line 1 is not a header"),
        ("d.csv", "a,b,label\n1,2,3\n", "2 feature column(s), but input 'pixels' takes 64"),
        ("d.jsonl", '{"input": [1, 2]}\nnot json\n', "line 1, input: shape [2] does not match"),
        ("d.jsonl", "\n\n", "no items in the file"),
        ("d.jsonl", "[1, 2, 3]\n", 'line 1: expected an object with an "input" key'),
    ],
)
def test_bad_files_name_the_file_and_place(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    """Each malformed file is refused with its path and what is wrong where."""
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InvalidInput) as info:
        load_dataset(path, PIXELS)
    assert str(path) in info.value.message and message in info.value.message


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    """A cell that is not a number is reported with its line and column name."""
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    with pytest.raises(InvalidInput, match=r"line 3, column 'b': 'oops' is not a number"):
        load_dataset(path, [TensorSpec(name="x", shape=[-1, 2])])


def test_missing_labels_are_refused_when_required(tmp_path: Path, digits01: Digits) -> None:
    """Unlabeled data is refused, with a hint naming the label column, when labels are needed."""
    path = write_csv(tmp_path / "d.csv", digits01[0][:3])
    with pytest.raises(InvalidInput, match="has no labels") as info:
        load_dataset(path, PIXELS, require_labels=True)
    assert "`label` column" in (info.value.hint or "")


def test_npz_checks_its_arrays(tmp_path: Path) -> None:
    """An npz without X, or whose items have the wrong shape, is refused naming the array."""
    np.savez(tmp_path / "a.npz", data=np.zeros((2, 64)))
    with pytest.raises(InvalidInput, match="no array X"):
        load_dataset(tmp_path / "a.npz", PIXELS)
    np.savez(tmp_path / "b.npz", X=np.zeros((2, 10)))
    with pytest.raises(InvalidInput, match=r"array X has items of shape \[10\]"):
        load_dataset(tmp_path / "b.npz", PIXELS)


def test_synthesized_items_match_the_inputs() -> None:
    """Made-up items have the declared shape and dtype; text cannot be made up."""
    items = synthesize_items([TensorSpec(name="ids", datatype="INT64", shape=[-1, 5])], 7)
    assert len(items) == 7 and items[0].shape == (5,) and items[0].dtype == np.int64
    with pytest.raises(InvalidInput, match="cannot make up items for input 'text'") as info:
        synthesize_items(TEXT, 4)
    assert "--data" in (info.value.hint or "")
