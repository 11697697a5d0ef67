"""Real digits models for the toolkit verbs: trained here, saved as joblib and ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

Digits = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="session")
def digits01() -> Digits:
    """Digits scaled to [0, 1] as float32, with their labels."""
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, digits01: Digits) -> Path:
    """digits-lr.joblib, digits-lr.onnx and digits-mlp.onnx, trained on the first 1200 rows."""
    pytest.importorskip("skl2onnx")
    from skl2onnx import to_onnx

    x, y = digits01
    folder = tmp_path_factory.mktemp("optimize-models")
    lr = LogisticRegression(max_iter=1000).fit(x[:1200], y[:1200])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 200 epochs are plenty for a test
        mlp = MLPClassifier((128,), max_iter=200, random_state=0).fit(x[:1200], y[:1200])
    joblib.dump(lr, folder / "digits-lr.joblib")
    for name, estimator in (("digits-lr", lr), ("digits-mlp", mlp)):
        onx = to_onnx(estimator, x[:1], options={"zipmap": False}, target_opset=17)
        (folder / f"{name}.onnx").write_bytes(onx.SerializeToString())
    return folder


def write_csv(path: Path, x: np.ndarray, y: np.ndarray | None = None) -> Path:
    """A CSV with a header (f0..fN and label when labels are given)."""
    header = [f"f{j}" for j in range(x.shape[1])] + (["label"] if y is not None else [])
    lines = [",".join(header)]
    for i, row in enumerate(x):
        cells = [f"{v:g}" for v in row] + ([str(int(y[i]))] if y is not None else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path
