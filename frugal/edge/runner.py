"""frugal's edge runner: a small model near the user, and the server for what it is unsure of.

This one file is what an edge bundle ships (``frugal export --edge``, docs/edge.md): it needs
only numpy and onnxruntime, and the standard library for HTTP, so it runs on a device that has
neither frugal nor its dependencies. It must never import frugal (tests/test_layering.py).

``EdgeModel`` opens the bundle's ONNX model after checking its sha256 against the manifest; a
text bundle also has a sentence encoder (all-MiniLM-L6-v2, int8) and its vocabulary, and
``WordPiece`` tokenizes for it in plain Python.
``EdgeCascade`` answers each item with it, keeps the answers whose confidence passes the gate
(the manifest's, or one given), sends the rest in one request to a frugal endpoint, and appends
to a local JSONL record what was answered where and what it cost: the server's own
``x-frugal-cost-usd``, and the device's time priced at ``usd_per_hour`` (0 by default: a user's
phone bills nobody).
"""

from __future__ import annotations

import hashlib
import json
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

FORMAT = "frugal-edge/1"
MANIFEST = "manifest.json"
_CLASSIFIER_OUTPUTS = (("label", "probabilities"), ("output_label", "output_probability"))


class BundleError(Exception):
    """The bundle is not one this runner can use: missing, altered or of another format."""


class ServerError(Exception):
    """The frugal server did not answer the escalated items (its URL and why are the message)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class WordPiece:
    """BERT's uncased tokenizer, as all-MiniLM-L6-v2's tokenizer.json sets it up (BertNormalizer
    lowercasing and stripping accents, BertPreTokenizer, WordPiece with ``##``, ``[CLS] x [SEP]``,
    truncated to ``max_length``), written out because a bundle cannot count on the compiled
    ``tokenizers`` package; tests/edge check it gives that package's ids."""

    def __init__(self, vocab: Path, max_length: int = 128) -> None:
        tokens = vocab.read_text(encoding="utf-8").splitlines()
        self.ids = {token: i for i, token in enumerate(tokens)}
        self.unk, self.cls, self.sep = (self.ids[t] for t in ("[UNK]", "[CLS]", "[SEP]"))
        self.pad = self.ids.get("[PAD]", 0)
        self.max_length = max_length

    def encode(self, text: str) -> list[int]:
        pieces: list[int] = []
        for word in _words(text):
            pieces.extend(self._pieces(word))
        return [self.cls, *pieces[: self.max_length - 2], self.sep]

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask), int64, padded to the longest text."""
        encoded = [self.encode(t) for t in texts]
        width = max(len(e) for e in encoded)
        ids = np.full((len(encoded), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
            mask[row, : len(e)] = 1
        return ids, mask

    def _pieces(self, word: str) -> list[int]:
        """Greedy longest match first; a word with an unknown part is one [UNK]."""
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.ids:
                    found = self.ids[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces


def _words(text: str) -> list[str]:
    """Clean, space out CJK characters, lowercase, strip accents, split on spaces and
    punctuation (each punctuation character a word of its own)."""
    kept = []
    for ch in text:
        code = ord(ch)
        if code in (0, 0xFFFD) or _control(ch):
            continue
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            kept.append(" ")
        elif _cjk(code):
            kept.append(f" {ch} ")
        else:
            kept.append(ch)
    normal = unicodedata.normalize("NFD", "".join(kept))
    text = "".join(c for c in normal if unicodedata.category(c) != "Mn").lower()
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if _punctuation(ch):
                if current:
                    words.append(current)
                words.append(ch)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


def _control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _punctuation(ch: str) -> bool:
    code = ord(ch)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _cjk(code: int) -> bool:
    return any(lo <= code <= hi for lo, hi in _CJK)


_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))  # fmt: skip


class EdgeModel:
    """The bundle's classifier: labels and confidences (max class probability) per item; a text
    bundle takes strings (encoded on the device first)."""

    def __init__(self, bundle: str | Path) -> None:
        self.bundle = Path(bundle)
        path = self.bundle / MANIFEST
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path}: cannot read the manifest ({exc})") from None
        if self.manifest.get("format") != FORMAT:
            raise BundleError(f"{path}: format {self.manifest.get('format')!r}, not {FORMAT}")
        model = self._checked(str(self.manifest.get("file", "")), self.manifest.get("sha256"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.manifest.get("threads", 1))
        cpu = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(model), options, providers=cpu)
        self.text: dict[str, Any] | None = self.manifest.get("text")
        if self.text is not None:
            encoder = self._checked(self.text["encoder"], self.text["encoder_sha256"])
            vocab = self._checked(self.text["vocab"], self.text["vocab_sha256"])
            self.tokenizer = WordPiece(vocab, int(self.text.get("max_length", 128)))
            self.encoder = ort.InferenceSession(str(encoder), options, providers=cpu)
        self.input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        pair = next((p for p in _CLASSIFIER_OUTPUTS if set(p) <= set(names)), None)
        if pair is None:
            raise BundleError(f"{model}: not a classifier (outputs {names}); the edge runner "
                              "needs labels and probabilities")  # fmt: skip
        self.outputs = list(pair)

    def _checked(self, name: str, sha256: Any) -> Path:
        path = self.bundle / name
        if not name or not path.is_file():
            raise BundleError(f"{path}: a file the manifest names is missing")
        if file_sha256(path) != sha256:
            raise BundleError(f"{path}: sha256 differs from the manifest's: altered or damaged")
        return path

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("gate", {}).get("confidence", 0.0))

    def predict(self, items: Any) -> tuple[list[Any], list[float]]:
        """One batch: each item's label and confidence, in order."""
        if self.text is not None:
            texts = [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in items]
            ids, mask = self.tokenizer.batch(texts)
            (embeddings,) = self.encoder.run(
                ["embedding"], {"input_ids": ids, "attention_mask": mask}
            )
            items = embeddings
        x = np.asarray(items, dtype=np.float32)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        labels, probabilities = self.session.run(self.outputs, {self.input: x})
        confidences = np.asarray(probabilities, dtype=np.float64).max(axis=1)
        return np.asarray(labels).tolist(), [float(c) for c in confidences]


@dataclass(frozen=True)
class EdgeAnswer:
    value: Any
    confidence: float | None  # the edge model's; None for a server answer
    where: str  # "edge", "server", or "edge-fallback" (server down, answered locally anyway)
    cost_usd: float  # this item's share of what answering it cost, where it was answered


class EdgeCascade:
    """The edge model first; items under the gate go to ``endpoint`` on a frugal server."""

    def __init__(
        self,
        bundle: str | Path,
        server_url: str,
        endpoint: str,
        *,
        api_key: str | None = None,
        threshold: float | None = None,
        timeout_s: float = 10.0,
        usd_per_hour: float = 0.0,
        record: str | Path | None = None,
        answer_locally_when_down: bool = False,
    ) -> None:
        self.model = EdgeModel(bundle)
        self.url = f"{server_url.rstrip('/')}/v1/endpoints/{endpoint}/predict"
        self.api_key = api_key
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        self.timeout_s = timeout_s
        self.usd_per_hour = usd_per_hour
        self.record = Path(record) if record is not None else self.model.bundle / "record.jsonl"
        self.answer_locally_when_down = answer_locally_when_down

    def predict(self, items: Any) -> list[EdgeAnswer]:
        """Answers in order; raises ServerError when the server fails (unless told to answer
        locally), after recording what the edge spent."""
        rows = list(items) if self.model.text is not None else np.asarray(items, dtype=np.float32)
        started = time.perf_counter()
        labels, confidences = self.model.predict(rows)
        local_s = time.perf_counter() - started
        edge_each = self.usd_per_hour * local_s / 3600 / max(len(labels), 1)
        answers: list[EdgeAnswer | None] = [None] * len(labels)
        rest = []
        for i, (label, confidence) in enumerate(zip(labels, confidences, strict=True)):
            if confidence >= self.threshold:
                answers[i] = EdgeAnswer(label, confidence, "edge", edge_each)
            else:
                rest.append(i)
        entry: dict[str, Any] = {
            "ts": time.time(), "items": len(labels), "edge": len(labels) - len(rest),
            "server": 0, "fallback": 0, "edge_s": local_s, "edge_usd": edge_each * len(labels),
            "server_usd": 0.0,
        }  # fmt: skip
        try:
            if rest:
                sent = [rows[i] for i in rest] if isinstance(rows, list) else rows[rest].tolist()
                values, cost, request_id = self._ask_server(sent)
                entry |= {"server": len(rest), "server_usd": cost, "request_id": request_id}
                for i, value in zip(rest, values, strict=True):
                    answers[i] = EdgeAnswer(value, None, "server", cost / len(rest))
        except ServerError as error:
            entry["server_error"] = str(error)
            if not self.answer_locally_when_down:
                self._write(entry)
                raise
            entry["fallback"] = len(rest)
            for i in rest:
                answers[i] = EdgeAnswer(labels[i], confidences[i], "edge-fallback", edge_each)
        self._write(entry)
        return [a for a in answers if a is not None]

    def _ask_server(self, instances: list[Any]) -> tuple[list[Any], float, str]:
        body = json.dumps({"instances": instances}).encode()
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                answer = json.loads(reply.read())
                cost = float(reply.headers.get("x-frugal-cost-usd", "0"))
                request_id = reply.headers.get("x-request-id", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise ServerError(f"{self.url}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ServerError(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(instances):
            raise ServerError(f"{self.url}: the answer has no prediction per item")
        return predictions, cost, request_id

    def _write(self, entry: dict[str, Any]) -> None:
        with self.record.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")


__all__ = [
    "FORMAT",
    "MANIFEST",
    "BundleError",
    "EdgeAnswer",
    "EdgeCascade",
    "EdgeModel",
    "ServerError",
    "WordPiece",
    "file_sha256",
]
