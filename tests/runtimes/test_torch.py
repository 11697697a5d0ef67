from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes import load_model, sha256_of
from frugal.runtimes.torch import TorchModel
from frugal.types import Prediction
from tests.runtimes.conftest import Split

# PyTorch 2.13 deprecates TorchScript: torch.jit.load warns each time the runtime loads a .pt file.
# The runtime passes that warning on to the user on purpose; these tests load TorchScript anyway.
jit_load_deprecated = pytest.mark.filterwarnings(
    "ignore:`torch.jit.load` is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def mlp(digits_split: Split) -> nn.Module:
    x_train, _, y_train, _ = digits_split
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(5):  # epochs of minibatches of 64
        for i in torch.randperm(len(x)).split(64):  # type: ignore[no-untyped-call]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i]), y[i])
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def artifacts(mlp: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same trained MLP saved as scripted and traced TorchScript and as torch.export."""
    folder = tmp_path_factory.mktemp("torch")
    example = torch.zeros(2, 64)
    with warnings.catch_warnings():
        # torch.jit.script and trace warn that TorchScript is deprecated; the runtime still
        # loads such files, so the tests make them.
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.script(mlp).save(str(folder / "scripted.pt"))  # type: ignore[no-untyped-call]
        torch.jit.trace(mlp, example).save(str(folder / "traced.pt"))  # type: ignore[no-untyped-call]
    batch = torch.export.Dim("batch")
    program = torch.export.export(mlp, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(folder / "exported.pt2"))
    return {p.stem: p for p in folder.iterdir()}


def _config(path: Path, sha256: str | None = None, **options: Any) -> ModelConfig:
    return ModelConfig(
        name="digits",
        runtime="torch",
        path=path,
        sha256=sha256 or sha256_of(path),
        options=options,
    )


def _reference(mlp: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        probabilities = torch.softmax(mlp(torch.from_numpy(x)), dim=1)
    result: np.ndarray = probabilities.numpy()
    return result


@pytest.mark.parametrize(
    "artifact",
    [
        pytest.param("scripted", marks=jit_load_deprecated),
        pytest.param("traced", marks=jit_load_deprecated),
        "exported",
    ],
)
def test_classifier_answers_argmax_with_max_softmax(
    artifact: str, artifacts: dict[str, Path], mlp: nn.Module, digits_split: Split
) -> None:
    """Logits answer the in-process model's argmax, with its max softmax as confidence."""
    _, x_test, _, y_test = digits_split
    model = load_model(_config(artifacts[artifact], device="cpu", classifier=True))
    assert isinstance(model, TorchModel)

    predictions = model.predict_batch(list(x_test))

    expected = _reference(mlp, x_test)
    labels = np.array([p.value for p in predictions])
    confidences = np.array([p.confidence for p in predictions], dtype=np.float64)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    assert (labels == y_test).mean() > 0.9
    assert ((confidences >= 0) & (confidences <= 1)).all()
    np.testing.assert_allclose(confidences, expected.max(axis=1), atol=1e-5)


def test_raw_output_answers_the_row_without_confidence(
    artifacts: dict[str, Path], mlp: nn.Module, digits_split: Split
) -> None:
    """Without ``classifier``, an item's answer is its output row as a list, with no confidence."""
    _, x_test, _, _ = digits_split
    predictions = load_model(_config(artifacts["exported"], device="cpu")).predict_batch(
        list(x_test[:5])
    )

    with torch.inference_mode():
        logits = mlp(torch.from_numpy(x_test[:5])).numpy()
    assert all(p.confidence is None for p in predictions)
    np.testing.assert_allclose([p.value for p in predictions], logits, rtol=1e-5, atol=1e-6)


def test_probabilities_output_is_not_softmaxed_again(tmp_path: Path) -> None:
    """``output: probabilities`` takes the row's max as confidence without a second softmax."""
    path = tmp_path / "softmax.pt2"
    module = nn.Softmax(dim=1)
    batch = torch.export.Dim("batch")
    program = torch.export.export(module, (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    row = np.array([0.0, 0.0, np.log(2.0)], dtype=np.float32)  # softmax: 0.25, 0.25, 0.5

    model = load_model(_config(path, device="cpu", output="probabilities"))

    answers = model.predict_batch([row, row])
    assert [(p.value, p.confidence, p.margin, p.tokens) for p in answers] == [
        pytest.approx((2, 0.5, 0.25, 0))  # margin: 0.5 - 0.25
    ] * 2


def test_bfloat16_on_cpu_keeps_accuracy(artifacts: dict[str, Path], digits_split: Split) -> None:
    """``dtype: bfloat16`` runs the model in bfloat16 and its answers stay accurate."""
    _, x_test, _, y_test = digits_split
    model = load_model(_config(artifacts["exported"], device="cpu", dtype="bfloat16"))
    assert isinstance(model, TorchModel)

    predictions = model.predict_batch(list(x_test))

    assert next(model.module.parameters()).dtype == torch.bfloat16
    assert (np.array([p.value for p in predictions]).argmax(axis=1) == y_test).mean() > 0.9


def test_dict_items_are_passed_by_argument_name(tmp_path: Path) -> None:
    """Dict items reach the forward argument of the same name, whatever the dict's order."""

    class Weighted(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + 10 * b

    path = tmp_path / "weighted.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        Weighted(), (torch.zeros(2, 2), torch.zeros(2, 2)), dynamic_shapes=({0: batch}, {0: batch})
    )
    torch.export.save(program, str(path))
    items = [{"b": np.ones(2), "a": np.array([1.0, 2.0])}, {"a": np.zeros(2), "b": np.zeros(2)}]

    predictions = load_model(_config(path, device="cpu")).predict_batch(items)

    assert predictions == [Prediction([11.0, 12.0]), Prediction([0.0, 0.0])]


def test_sha256_mismatch_is_refused_naming_the_file(artifacts: dict[str, Path]) -> None:
    """A file whose sha256 differs from the config's is refused with an error naming the file."""
    path = artifacts["exported"]
    with pytest.raises(ArtifactError, match="sha256 mismatch") as info:
        load_model(_config(path, sha256="0" * 64))
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["corrupt.pt", "corrupt.pt2"])
def test_corrupt_file_raises_artifact_error(name: str, tmp_path: Path) -> None:
    """A file of random bytes with a matching sha256 raises ArtifactError naming model and path."""
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(512))

    with pytest.raises(ArtifactError) as info:
        load_model(_config(path, device="cpu"))
    assert "digits:1" in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


def test_unknown_option_is_refused_by_name(artifacts: dict[str, Path]) -> None:
    """An option the torch runtime does not know is an ArtifactError naming the option."""
    with pytest.raises(ArtifactError, match="num_threads"):
        load_model(_config(artifacts["exported"], num_threads=2))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dtype": "float16", "device": "cpu"}, "float16 needs a CUDA device"),
        ({"dtype": "int8"}, "dtype"),
        ({"output": "labels"}, "output"),
        ({"classifier": "yes"}, "classifier"),
        ({"device": "tpu-please"}, "device"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_option_value_is_refused(
    options: dict[str, Any], match: str, artifacts: dict[str, Path]
) -> None:
    """An option value the runtime cannot use is an ArtifactError naming the option."""
    with pytest.raises(ArtifactError, match=match):
        load_model(_config(artifacts["exported"], **options))


def test_unknown_suffix_is_refused(artifacts: dict[str, Path], tmp_path: Path) -> None:
    """A file whose suffix names no torch format is refused with a hint on how to name it."""
    path = tmp_path / "model.bin"
    path.write_bytes(artifacts["exported"].read_bytes())

    with pytest.raises(ArtifactError, match=r"\.pt2"):
        load_model(_config(path, device="cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_answers_match_cpu(artifacts: dict[str, Path], digits_split: Split) -> None:
    """On a GPU the same artifact answers the same labels as on the CPU."""
    _, x_test, _, _ = digits_split
    config = _config(artifacts["exported"], classifier=True)
    cpu = load_model(config.model_copy(update={"options": {"device": "cpu", "classifier": True}}))
    cuda = load_model(config)

    assert [p.value for p in cuda.predict_batch(list(x_test))] == [
        p.value for p in cpu.predict_batch(list(x_test))
    ]


def _export_sum(path: Path) -> Path:
    """A model whose output is 1-D: one float per item, so never class scores."""

    class Sum(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1)

    batch = torch.export.Dim("batch")
    program = torch.export.export(Sum(), (torch.zeros(2, 3),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


def test_classifier_with_non_class_output_answers_raw(tmp_path: Path) -> None:
    """With ``output: auto``, ``classifier: true`` reads only a 2-D float output as class logits."""
    path = _export_sum(tmp_path / "sum.pt2")
    model = load_model(_config(path, device="cpu", classifier=True))

    assert model.predict_batch([np.ones(3), np.zeros(3)]) == [Prediction(3.0), Prediction(0.0)]


def test_explicit_logits_with_non_class_output_raises(tmp_path: Path) -> None:
    """``output: logits`` on an output that is not (batch, classes) raises rather than guess."""
    path = _export_sum(tmp_path / "sum.pt2")
    model = load_model(_config(path, device="cpu", output="logits"))

    with pytest.raises(RuntimeError, match="2-D float output"):
        model.predict_batch([np.ones(3)])
