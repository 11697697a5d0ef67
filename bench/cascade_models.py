"""The large tiers of bench/cascade_bench.py's tasks, trained on scikit-learn's bundled digits.

- ``knn``: 3-nearest neighbours over the training images. Cheap per item once batched (one
  matrix product), dear per call: the task where the cascade did not pay.
- ``cnn``: a small convolutional network (3 conv layers, 32-64-64 channels) trained with random
  one-pixel shifts, served with test-time augmentation: every image is classified in its 9
  one-pixel shifts and the 9 softmaxes are averaged (an ensemble of views). About 4M
  multiply-adds per view, so ~35M per image: compute-bound per item, its cost per item stays
  high even in full batches. Exported with ``torch.export`` (``.pt2``), batch dimension dynamic.

Training is seeded and single-process; the cnn takes ~20-30 s on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CNN_EPOCHS = 60
CNN_WIDTH = 32


def train_knn(x: np.ndarray, y: np.ndarray, path: Path) -> Path:
    import joblib
    from sklearn.neighbors import KNeighborsClassifier

    joblib.dump(KNeighborsClassifier(3).fit(x, y), path)
    return path


def to_onnx(classifier: Any, path: Path) -> Path:
    """A fitted scikit-learn classifier as ONNX (labels and a probability matrix, no ZipMap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    inputs = [("pixels", FloatTensorType([None, 64]))]
    options = {id(classifier): {"zipmap": False}}
    proto = convert_sklearn(classifier, initial_types=inputs, options=options, target_opset=17)
    path.write_bytes(proto.SerializeToString())
    return path


def _network(width: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3),
        nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def _shifted(images: Any, dy: Any, dx: Any) -> Any:
    """Each 8x8 image moved by (dy, dx) in {0, 1, 2} - 1 pixels, zeros shifted in."""
    import torch
    from torch import nn

    n = images.shape[0]
    padded = nn.functional.pad(images.view(n, 8, 8), (1, 1, 1, 1))
    return torch.stack([padded[i, dy[i] : dy[i] + 8, dx[i] : dx[i] + 8] for i in range(n)])


def _tta_module(net: Any) -> Any:
    import torch
    from torch import nn

    class ShiftEnsemble(nn.Module):
        """Raw 0-16 pixels in; the mean softmax over the image's 9 one-pixel shifts out."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            padded = nn.functional.pad((pixels / 16.0).view(-1, 1, 8, 8), (1, 1, 1, 1))
            views = torch.cat(
                [padded[:, :, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)]
            )
            probs = self.net(views.reshape(-1, 64)).softmax(-1)
            return probs.view(9, -1, 10).mean(0)

    return ShiftEnsemble().eval()


def train_cnn(x: np.ndarray, y: np.ndarray, path: Path, *, threads: int = 2) -> Path:
    """Seeded training (AdamW, one-cycle, batches of 50, random shifts), then torch.export."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    net = _network(CNN_WIDTH)
    xt, yt = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    optimizer = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    steps_per_epoch = (len(xt) + 49) // 50
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 3e-3, total_steps=CNN_EPOCHS * steps_per_epoch
    )
    for _ in range(CNN_EPOCHS):
        net.train()
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 50):
            idx = order[start : start + 50]
            dy = torch.randint(0, 3, (len(idx),), generator=generator)
            dx = torch.randint(0, 3, (len(idx),), generator=generator)
            batch = _shifted(xt[idx], dy, dx).reshape(-1, 64)
            loss = nn.functional.cross_entropy(net(batch), yt[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    module = _tta_module(net)
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(module, (torch.zeros(4, 64),), dynamic_shapes=({0: batch_dim},))
    torch.export.save(program, str(path))
    return path


def model_options(task: str) -> dict[str, Any]:
    """``models[].options`` for the large tier of ``task`` (frugal/runtimes/torch.py)."""
    if task == "cnn":  # one thread a batch: a c7i.large's 2 slots are its 2 cores
        return {"device": "cpu", "threads": 1, "output": "probabilities"}
    return {}


__all__ = ["model_options", "train_cnn", "train_knn"]
