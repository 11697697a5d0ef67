from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

from frugal.config import ModelConfig
from frugal.errors import ArtifactError, InvalidInput
from frugal.runtimes import load_model, sha256_of
from frugal.runtimes.onnx import OnnxModel
from frugal.types import Prediction
from tests.runtimes.conftest import Split


@pytest.fixture(scope="module")
def classifier(digits_split: Split) -> LogisticRegression:
    x_train, _, y_train, _ = digits_split
    return LogisticRegression(max_iter=500).fit(x_train, y_train)


@pytest.fixture(scope="module")
def classifier_onnx(
    classifier: LogisticRegression, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    proto = convert_sklearn(
        classifier,
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={id(classifier): {"zipmap": False}},
    )
    path = tmp_path_factory.mktemp("onnx") / "digits-lr.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def _config(path: Path, sha256: str | None = None, **options: Any) -> ModelConfig:
    return ModelConfig(
        name="digits",
        runtime="onnx",
        path=path,
        sha256=sha256 or sha256_of(path),
        options=options,
    )


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def _graph(nodes: list[onnx.NodeProto], inputs: list[str], output: str, width: int) -> Any:
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, width]) for n in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, width])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_classifier_answers_sklearn_labels_with_max_probability(
    classifier: LogisticRegression, classifier_onnx: Path, digits_split: Split
) -> None:
    """A skl2onnx classifier answers sklearn's labels, with max probability as confidence."""
    _, x_test, _, y_test = digits_split
    model = load_model(_config(classifier_onnx))
    assert isinstance(model, OnnxModel)

    predictions = model.predict_batch(list(x_test))

    labels = np.array([p.value for p in predictions])
    confidences = np.array([p.confidence for p in predictions], dtype=np.float64)
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    assert (labels == y_test).mean() > 0.9
    assert ((confidences >= 0) & (confidences <= 1)).all()
    np.testing.assert_allclose(confidences, classifier.predict_proba(x_test).max(axis=1), atol=1e-5)


def test_zipmap_classifier_answers_label_and_confidence(
    classifier: LogisticRegression, digits_split: Split, tmp_path: Path
) -> None:
    """A classifier converted with its ZipMap kept answers labels and max probabilities too."""
    _, x_test, _, _ = digits_split
    proto = convert_sklearn(classifier, initial_types=[("pixels", FloatTensorType([None, 64]))])
    path = tmp_path / "zipmap.onnx"
    path.write_bytes(proto.SerializeToString())

    predictions = load_model(_config(path)).predict_batch(list(x_test[:20]))

    assert [p.value for p in predictions] == classifier.predict(x_test[:20]).tolist()
    confidences = [p.confidence for p in predictions if p.confidence is not None]
    np.testing.assert_allclose(
        confidences,
        classifier.predict_proba(x_test[:20]).max(axis=1),
        atol=1e-5,
    )


def test_float64_rows_are_cast_to_the_session_dtype(
    classifier: LogisticRegression, classifier_onnx: Path, digits_split: Split
) -> None:
    """Rows of another dtype are cast to the dtype the session's input declares."""
    _, x_test, _, _ = digits_split
    rows = list(x_test[:10].astype(np.float64))

    predictions = load_model(_config(classifier_onnx)).predict_batch(rows)

    assert [p.value for p in predictions] == classifier.predict(x_test[:10]).tolist()


def test_several_inputs_are_fed_by_name_from_dict_items(tmp_path: Path) -> None:
    """Dict items feed each of a model's inputs by name, one stacked tensor per input."""
    path = _save(
        _graph([helper.make_node("Add", ["a", "b"], ["sum"])], ["a", "b"], "sum", 3),
        tmp_path / "add.onnx",
    )
    items = [
        {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([10.0, 20.0, 30.0])},
        {"b": np.zeros(3), "a": np.ones(3)},
    ]

    predictions = load_model(_config(path)).predict_batch(items)

    assert predictions == [Prediction([11.0, 22.0, 33.0]), Prediction([1.0, 1.0, 1.0])]


def test_generic_output_has_confidence_only_when_asked(tmp_path: Path) -> None:
    """A softmax output answers its row, with max probability as confidence only when configured."""
    path = _save(
        _graph([helper.make_node("Softmax", ["x"], ["p"], axis=1)], ["x"], "p", 4),
        tmp_path / "softmax.onnx",
    )
    rows = [np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32), np.zeros(4, dtype=np.float32)]
    expected = np.exp(rows[0]) / np.exp(rows[0]).sum()

    plain = load_model(_config(path)).predict_batch(rows)
    confident = load_model(_config(path, confidence="max_probability")).predict_batch(rows)

    np.testing.assert_allclose(plain[0].value, expected, rtol=1e-6)
    assert [p.confidence for p in plain] == [None, None]
    assert confident[0].confidence == pytest.approx(expected.max(), rel=1e-6)
    assert confident[1].confidence == pytest.approx(0.25, rel=1e-6)


def test_sha256_mismatch_is_refused_naming_the_file(classifier_onnx: Path) -> None:
    """A file whose sha256 differs from the config's is refused with an error naming the file."""
    with pytest.raises(ArtifactError, match="sha256 mismatch") as info:
        load_model(_config(classifier_onnx, sha256="0" * 64))
    assert str(classifier_onnx) in str(info.value)


def test_corrupt_file_raises_artifact_error(tmp_path: Path) -> None:
    """A file of random bytes with a matching sha256 raises ArtifactError naming model and path."""
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(512))

    with pytest.raises(ArtifactError) as info:
        load_model(_config(path))
    assert "digits:1" in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


def test_unknown_option_is_refused_by_name(classifier_onnx: Path) -> None:
    """An option the onnx runtime does not know is an ArtifactError naming the option."""
    with pytest.raises(ArtifactError, match="intra_op_threads"):
        load_model(_config(classifier_onnx, intra_op_threads=2))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("graph_optimization_level", "max"),
        ("intra_op_num_threads", "two"),
        ("providers", ["NoSuchExecutionProvider"]),
        ("confidence", "margin"),
    ],
)
def test_bad_option_value_is_refused(classifier_onnx: Path, option: str, value: Any) -> None:
    """An option value the runtime cannot use is an ArtifactError naming the option or value."""
    with pytest.raises(ArtifactError, match=option if option != "providers" else value[0]):
        load_model(_config(classifier_onnx, **{option: value}))


def test_session_options_are_applied(classifier_onnx: Path) -> None:
    """Thread counts, optimization level and providers from the options reach the session."""
    model = load_model(
        _config(
            classifier_onnx,
            intra_op_num_threads=2,
            graph_optimization_level="basic",
            providers=["CPUExecutionProvider"],
        )
    )
    assert isinstance(model, OnnxModel)
    session_options = model.session.get_session_options()
    assert session_options.intra_op_num_threads == 2
    assert session_options.inter_op_num_threads == 1
    assert model.session.get_providers() == ["CPUExecutionProvider"]


def test_rows_that_are_not_probabilities_get_no_confidence(tmp_path: Path) -> None:
    """With max_probability set, a row that does not sum to 1 (logits) still gets no confidence."""
    model = _graph([helper.make_node("Identity", ["x"], ["y"])], ["x"], "y", 2)
    path = _save(model, tmp_path / "identity.onnx")
    rows = [np.array([2.0, 3.0], dtype=np.float32), np.array([0.3, 0.7], dtype=np.float32)]

    predictions = load_model(_config(path, confidence="max_probability")).predict_batch(rows)

    assert predictions[0] == Prediction([2.0, 3.0], None)
    assert predictions[1].confidence == pytest.approx(0.7)


def test_item_missing_an_input_is_invalid(tmp_path: Path) -> None:
    """An item that lacks one of several inputs is InvalidInput naming that input."""
    model = _graph([helper.make_node("Add", ["a", "b"], ["sum"])], ["a", "b"], "sum", 1)
    path = _save(model, tmp_path / "add.onnx")

    with pytest.raises(InvalidInput) as info:
        load_model(_config(path)).predict_batch([{"a": np.ones(1)}])
    assert info.value.field == "b"
