"""Magnitude pruning of a TorchScript file, with ``torch.nn.utils.prune``'s own rules.

A TorchScript module cannot go through ``torch.nn.utils.prune.l1_unstructured`` itself: that
function moves ``weight`` to a new ``weight_orig`` parameter plus a mask and a forward pre-hook,
and a ``ScriptModule`` refuses it ("Can't add a new parameter after ScriptModule construction").
Rebuilding the eager model is not possible in general either (the file
holds code and tensors, not the Python class). So this asks the pruning methods torch's
functions use (``L1Unstructured``, ``LnStructured(n=2, dim=0)``) for their mask via
``compute_mask`` and multiplies the scripted module's weight parameters by it in place: the same
zeros ``prune.l1_unstructured`` + ``prune.remove`` would bake in. ``torch.jit.save`` then writes
them, and :func:`weight_sparsity` counts them back from the saved file.

Structured pruning zeros whole output rows (channels), which a dense kernel still multiplies:
:func:`shrink_sequential` physically removes them where the model is a plain ``nn.Sequential``
of Linear layers and elementwise activations (drop rows of layer k, the matching input columns of
layer k+1, and fold the dropped units' constant output, act(bias), into layer k+1's bias).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.errors import ArtifactError, InvalidInput

PRUNABLE = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d"})
# Modules that act on each unit alone, so a removed unit's constant output can be folded forward.
ELEMENTWISE = frozenset(
    {"ReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "LeakyReLU", "ELU", "Dropout", "Identity"}
)


@dataclass(frozen=True, slots=True)
class Sparsity:
    """Weights of the pruned layers in a saved file, against the original layer sizes."""

    original: int  # weights the pruned layers had before pruning
    kept: int  # weights in those layers in the saved file (fewer once shrunk)
    zeros: int  # exactly-zero weights among ``kept``

    @property
    def share(self) -> float:
        """Share of the original weights that are zero or gone."""
        return (self.zeros + self.original - self.kept) / self.original if self.original else 0.0

    @property
    def removed(self) -> float:
        return (self.original - self.kept) / self.original if self.original else 0.0


@contextmanager
def _jit() -> Iterator[None]:
    """torch.jit.load/save warn that TorchScript is deprecated; the runtime says so already."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_scripted(path: Path) -> Any:
    """The TorchScript module in ``path`` on CPU; a file torch cannot read exits 2."""
    import torch

    try:
        with _jit():
            return torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:  # RuntimeError, ValueError... from the TorchScript reader
        raise ArtifactError(
            f"{path}: not a TorchScript file torch can load: {str(exc).splitlines()[0]}",
            hint="save the model with torch.jit.script(model).save(...)",
        ) from None


def save_scripted(module: Any, path: Path) -> None:
    import torch

    with _jit():
        torch.jit.save(module, str(path))


def prunable_layers(module: Any, *, structured: bool) -> list[str]:
    """Names of the Linear/Conv submodules whose ``weight`` is pruned.

    Structured pruning leaves the last such layer alone: its rows are the model's outputs
    (classes), and removing one removes an answer, not redundancy.
    """
    names = [
        name
        for name, sub in module.named_modules()
        if getattr(sub, "original_name", type(sub).__name__) in PRUNABLE
        and getattr(sub, "weight", None) is not None
    ]
    if not names:
        raise InvalidInput(
            "the model has no Linear or Conv layers to prune",
            hint="frugal prune prunes nn.Linear / nn.Conv weights of a TorchScript model",
        )
    if structured:
        names = names[:-1]
        if not names:
            raise InvalidInput(
                "structured pruning needs a hidden Linear/Conv layer: the only one is the output",
                hint="drop --structured to prune single weights instead",
            )
    return names


def prune_weights(module: Any, layers: list[str], amount: float, *, structured: bool) -> None:
    """Zero ``amount`` of each layer's weights in place: L1 per weight, or L2 per output row."""
    import torch
    from torch.nn.utils import prune

    method: Any = (
        prune.LnStructured(amount, n=2, dim=0) if structured else prune.L1Unstructured(amount)
    )
    modules = dict(module.named_modules())
    with torch.no_grad():
        for name in layers:
            weight = modules[name].weight
            mask = method.compute_mask(weight.detach(), torch.ones_like(weight))
            weight.mul_(mask.to(weight.dtype))


def weight_sparsity(path: Path, layers: list[str], original: dict[str, int]) -> Sparsity:
    """Count zeros in the saved file's weights of ``layers`` (so it matches what is served)."""
    modules = dict(load_scripted(path).named_modules())
    kept = zeros = 0
    for name in layers:
        weight = modules[name].weight.detach()
        kept += weight.numel()
        zeros += int((weight == 0).sum())
    return Sparsity(original=sum(original[n] for n in layers), kept=kept, zeros=zeros)


def layer_sizes(module: Any, layers: list[str]) -> dict[str, int]:
    modules = dict(module.named_modules())
    return {name: int(modules[name].weight.numel()) for name in layers}


def shrink_sequential(module: Any) -> tuple[Any | None, str]:
    """A smaller scripted copy without the all-zero rows, or None and the reason it cannot be.

    Only a top-level ``nn.Sequential`` of Linear layers and elementwise activations is shrunk:
    anywhere else the shapes a row feeds are not known from the file.
    """
    import torch

    children = list(module.named_children())
    kinds = [getattr(c, "original_name", type(c).__name__) for _, c in children]
    if getattr(module, "original_name", "") != "Sequential" or any(
        k != "Linear" and k not in ELEMENTWISE for k in kinds
    ):
        return None, (
            "not shrunk: only an nn.Sequential of Linear layers and elementwise activations is "
            "rebuilt; the zeroed rows stay in dense kernels, so expect no speed-up"
        )
    linears = [i for i, k in enumerate(kinds) if k == "Linear"]
    layers: list[Any] = [c for _, c in children]
    with torch.no_grad():
        weights = {i: layers[i].weight.detach().clone() for i in linears}
        biases = {
            i: None if layers[i].bias is None else layers[i].bias.detach().clone() for i in linears
        }
        for k, nxt in itertools.pairwise(linears):
            keep = weights[k].abs().sum(dim=1) != 0
            if bool(keep.all()):
                continue
            dropped = ~keep
            bias = biases[k]
            constant = torch.zeros(int(dropped.sum())) if bias is None else bias[dropped]
            for between in layers[k + 1 : nxt]:  # the dropped units still output act(bias)
                constant = between(constant)
            fold = weights[nxt][:, dropped] @ constant
            biases[nxt] = fold if biases[nxt] is None else biases[nxt] + fold
            weights[nxt] = weights[nxt][:, keep]
            weights[k] = weights[k][keep]
            biases[k] = None if bias is None else bias[keep]
        rebuilt: list[torch.nn.Module] = []
        for i, child in enumerate(layers):
            if i not in weights:
                rebuilt.append(child)
                continue
            out_features, in_features = weights[i].shape
            linear = torch.nn.Linear(in_features, out_features, bias=biases[i] is not None)
            linear.weight.copy_(weights[i])
            bias = biases[i]
            if bias is not None:
                linear.bias.copy_(bias)
            rebuilt.append(linear)
    return torch.jit.script(torch.nn.Sequential(*rebuilt).eval()), "rows removed"


__all__ = [
    "ELEMENTWISE",
    "PRUNABLE",
    "Sparsity",
    "layer_sizes",
    "load_scripted",
    "prunable_layers",
    "prune_weights",
    "save_scripted",
    "shrink_sequential",
    "weight_sparsity",
]
