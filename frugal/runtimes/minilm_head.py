"""A text classifier: MiniLM sentence embeddings, then a small ONNX head (``frugal distill``'s
text student).

    models:
      - name: reviews-student
        runtime: python
        factory: frugal.runtimes.minilm_head:make_model
        inputs: [{name: text, datatype: BYTES, shape: [-1]}]
        options: {head_file: /abs/reviews-student.onnx, head_sha256: 3f2a..., classes: [neg, pos]}

The head file maps a batch of 384-float embeddings (input ``embedding``) to class probabilities
(output ``probabilities``, columns in ``classes`` order). The python runtime pins a factory's
module file, not the files its options name, so this factory checks ``head_sha256`` itself
before it opens the head. Answers: the most probable class, its probability as confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from frugal.runtimes.base import sha256_of, top_two
from frugal.types import Prediction


class MiniLMHead:
    """Embeds a batch with MiniLM, runs the head, answers label + max probability."""

    def __init__(self, embedder: Any, session: Any, classes: Sequence[Any]) -> None:
        self.embedder = embedder
        self.session = session
        self.classes = list(classes)
        self.item_size = embedder.item_size  # the batcher groups sentences by token count

    def probabilities(self, items: Sequence[str | bytes]) -> np.ndarray:
        """Class probabilities per item, columns in ``classes`` order."""
        embeddings = self.embedder.embed(items).astype(np.float32)
        return np.asarray(self.session.run(["probabilities"], {"embedding": embeddings})[0])

    def predict_batch(self, items: Sequence[str | bytes]) -> list[Prediction]:
        best, confidences, margins = top_two(self.probabilities(items))
        return [
            Prediction(self.classes[b], c, margin=m)
            for b, c, m in zip(best, confidences, margins, strict=True)
        ]


def make_model(
    head_file: str,
    head_sha256: str,
    classes: list[Any],
    threads: int = 1,
    max_length: int = 128,
) -> MiniLMHead:
    """The factory: ``factory: frugal.runtimes.minilm_head:make_model``; options as arguments."""
    import onnxruntime as ort

    from frugal.runtimes.minilm import make_model as make_embedder

    path = Path(head_file)
    if not path.is_file():
        raise ValueError(f"head_file {head_file}: not a file")
    digest = sha256_of(path)
    if digest != head_sha256.lower():
        raise ValueError(f"head_file {head_file}: sha256 is {digest}, options say {head_sha256}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    width = session.get_outputs()[0].shape[-1]
    if isinstance(width, int) and width != len(classes):
        raise ValueError(
            f"head_file {head_file} answers {width} classes, options list {len(classes)}"
        )
    embedder = make_embedder(max_length=max_length, threads=threads)
    return MiniLMHead(embedder, session, classes)


__all__ = ["MiniLMHead", "make_model"]
