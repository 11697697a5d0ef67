"""Train the toolkit walk-through's models (docs/toolkit.md) on scikit-learn's digits.

    python examples/toolkit/train.py

writes, next to this file:
- models/digits-mlp.onnx: MLPClassifier((128,)) on the first 1200 digits, exported by skl2onnx
  (the model `frugal profile`, `quantize`, `plan` and `check` walk through);
- models/digits-mlp.pt: the same shape of MLP in torch (64-128-10), as TorchScript, for
  `frugal prune` (which prunes torch weights);
- digits-val.npz: the 597 held-out digits (X scaled to [0, 1], y), the `--data` of every verb.

It prints each model's held-out accuracy and sha256 (for frugal.yaml).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from frugal.runtimes import sha256_of

HERE = Path(__file__).resolve().parent
TRAIN = 1200


def train_onnx(x: np.ndarray, y: np.ndarray, path: Path) -> float:
    from skl2onnx import to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 200 epochs are plenty here
        mlp = MLPClassifier((128,), max_iter=200, random_state=0).fit(x[:TRAIN], y[:TRAIN])
    onx = to_onnx(mlp, x[:1], options={"zipmap": False}, target_opset=17)
    path.write_bytes(onx.SerializeToString())
    return float(mlp.score(x[TRAIN:], y[TRAIN:]))


def train_torch(x: np.ndarray, y: np.ndarray, path: Path) -> float:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x[:TRAIN]), torch.from_numpy(y[:TRAIN])
    for _ in range(20):
        for i in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            optimizer.step()
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what prune reads
        torch.jit.script(model).save(str(path))
    with torch.no_grad():
        predicted = model(torch.from_numpy(x[TRAIN:])).argmax(dim=1).numpy()
    return float((predicted == y[TRAIN:]).mean())


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    (HERE / "models").mkdir(exist_ok=True)
    np.savez_compressed(HERE / "digits-val.npz", X=x[TRAIN:], y=y[TRAIN:])
    for name, train in (("digits-mlp.onnx", train_onnx), ("digits-mlp.pt", train_torch)):
        path = HERE / "models" / name
        accuracy = train(x, y, path)
        print(f"{path.relative_to(HERE)}: held-out accuracy {accuracy:.3f}")
        print(f"  sha256: {sha256_of(path)}")


if __name__ == "__main__":
    main()
