"""Real 2-tier cascades for the calibrate tests: trained here, with the frugal.yaml that names
them (comments included, so an in-place edit can be checked byte for byte)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from click.testing import CliRunner, Result
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from frugal.cli import main
from frugal.runtimes import sha256_of


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_config(folder: Path, accept: str, *, features: int, name: str = "frugal.yaml") -> Path:
    """A frugal.yaml with a 2-tier cascade (and a plain endpoint), comments included."""
    path = folder / name
    small, large = folder / "small.joblib", folder / "large.joblib"
    path.write_text(
        f"""# a cascade: the cheap model answers when it is sure
instance:
  price_usd_per_hour: 0.0928  # c7i.large on demand
models:
  - name: small
    runtime: sklearn
    path: {small.name}
    sha256: {sha256_of(small)}
    inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}]
    batching: {{max_batch_size: 64}}
  - name: large
    runtime: sklearn
    path: {large.name}
    sha256: {sha256_of(large)}
    inputs: [{{name: x, datatype: FP32, shape: [-1, {features}]}}]
    batching: {{max_batch_size: 64}}
endpoints:
  - name: plain
    model: large
  - name: cascade
    route:
      cascade:
        - model: small
          accept: {{{accept}}}   # calibrate me
        - {{model: large}}
"""
    )
    return path


def train(folder: Path, x: np.ndarray, y: np.ndarray, small: Any, large: Any, train_n: int) -> Path:
    """Fit both tiers on the first ``train_n`` rows; the rest become the labeled data.npz."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # an under-trained small tier
        joblib.dump(small.fit(x[:train_n], y[:train_n]), folder / "small.joblib")
    joblib.dump(large.fit(x[:train_n], y[:train_n]), folder / "large.joblib")
    np.savez(folder / "data.npz", X=x[train_n:], y=y[train_n:])
    return folder / "data.npz"


def train_digits_cascade(folder: Path) -> Path:
    """An under-trained logistic regression (~91%) before a 5-NN (~98-99%) on shuffled digits."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order]
    train(folder, x, y, LogisticRegression(max_iter=5), KNeighborsClassifier(5), 900)
    return folder
