"""Train the cost-gate example's model: a logistic regression on scikit-learn's digits.

    python examples/cost-gate/train.py

writes models/digits-lr.joblib and prints its sha256 for frugal.yaml. The gate itself never
loads this file; `frugal profile` and `frugal serve` do.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from frugal.runtimes import sha256_of

HERE = Path(__file__).resolve().parent


def main() -> None:
    x, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=2000).fit(x[:1500].astype(np.float32), y[:1500])
    accuracy = model.score(x[1500:].astype(np.float32), y[1500:])
    path = HERE / "models" / "digits-lr.joblib"
    path.parent.mkdir(exist_ok=True)
    joblib.dump(model, path)
    print(f"{path.relative_to(HERE)}: held-out accuracy {accuracy:.3f}")
    print(f"sha256: {sha256_of(path)}")


if __name__ == "__main__":
    main()
