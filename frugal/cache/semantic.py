"""Semantic lookup: find a stored text that means the same as a new one, so its answer can serve.

An exact cache key misses "What's the way to reset my password?" after "How do I reset my
password?"; ``SemanticIndex`` maps each stored text's embedding to its cache key and answers with
the key of the most similar stored text when the cosine similarity reaches ``threshold``.
``bench/semantic_threshold.py`` measures hit and false-hit rates per threshold on the paraphrase
set in ``frugal.cache.paraphrases``; ``DEFAULT_THRESHOLD`` says what it found for
all-MiniLM-L6-v2: cosine similarity alone does not tell a paraphrase from a swapped word order.

The search is brute force in numpy: one float32 matrix of L2-normalized rows and one
matrix-vector product per lookup, about a millisecond for 10k entries of 384 floats, which is
less than embedding the text costs. Past ~100k entries an approximate nearest-neighbour library
(FAISS, hnswlib) would be the next step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

# The lowest threshold with no false hit on frugal.cache.paraphrases for all-MiniLM-L6-v2
# (bench/semantic_threshold.py). It is this high because pairs with the same words in another
# order ("from Paris to London" / "from London to Paris") score up to 0.9975, so below it the
# cache can serve a wrong answer; at it, only near-identical texts match. A lower threshold buys
# paraphrase hits with false hits (0.95: 27% hits, 8% false hits on that set): choose one per
# endpoint, knowing its traffic.
DEFAULT_THRESHOLD = 0.998

_MIN_ROWS = 64  # first allocation; the matrix doubles up to max_entries


class SemanticIndex:
    """Finds a stored text that means the same as a new one: cosine similarity >= threshold.

    Every method is synchronous and CPU-bound (``nearest`` and ``add`` embed their text, which
    takes milliseconds), so a caller on the event loop runs them in a worker thread. A lock
    guards the index, so several threads may call at once; ``embed`` runs outside the lock and
    may therefore be called from several threads concurrently.

    ``embed`` maps n texts to an (n, dim) array; rows are L2-normalized here, so any embedding
    works. Entries leave oldest first (FIFO by ``add``) past ``max_entries``, or by ``remove``.
    """

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        *,
        threshold: float,
        max_entries: int = 10_000,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.threshold = threshold
        self.max_entries = max_entries
        self._embed = embed
        self._lock = threading.Lock()
        # Rows 0..len-1 of _vectors are live; _keys[i] is row i's key. _rows maps key -> row and,
        # as a dict, keeps insertion order: its first key is the oldest entry.
        self._vectors: np.ndarray | None = None
        self._keys: list[bytes] = []
        self._rows: dict[bytes, int] = {}

    def nearest(self, text: str) -> tuple[bytes | None, float]:
        """(key of the most similar stored text if its similarity >= threshold, else None;
        that similarity). An empty index answers (None, 0.0)."""
        query = self._vector(text)
        with self._lock:
            count = len(self._keys)
            if count == 0 or self._vectors is None:
                return None, 0.0
            scores = self._vectors[:count] @ query
            best = int(np.argmax(scores))
            similarity = min(float(scores[best]), 1.0)  # rounding can pass 1 by an ulp
            key = self._keys[best]
        return (key if similarity >= self.threshold else None), similarity

    def add(self, text: str, key: bytes) -> None:
        """Remember ``text`` as leading to ``key``; a key added again takes the new text and
        counts as newest. Past ``max_entries`` the oldest entries are evicted."""
        vector = self._vector(text)
        with self._lock:
            if key in self._rows:
                self._drop(key)
            while len(self._keys) >= self.max_entries:
                self._drop(next(iter(self._rows)))
            row = len(self._keys)
            self._vectors = self._room_for(row + 1, vector.shape[0])
            self._vectors[row] = vector
            self._keys.append(key)
            self._rows[key] = row

    def remove(self, key: bytes) -> None:
        """Forget ``key`` (its answer was invalidated or expired); an unknown key is ignored."""
        with self._lock:
            if key in self._rows:
                self._drop(key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def _vector(self, text: str) -> np.ndarray:
        vectors = np.asarray(self._embed([text]), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != 1:
            raise ValueError(f"embed returned shape {vectors.shape} for 1 text, not (1, dim)")
        vector: np.ndarray = vectors[0]
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def _drop(self, key: bytes) -> None:
        # Swap the last row into the freed one so live rows stay contiguous; the caller holds
        # the lock. Reassigning _rows[last] keeps its place in the insertion (FIFO) order.
        row = self._rows.pop(key)
        last = len(self._keys) - 1
        if row != last:
            assert self._vectors is not None
            moved = self._keys[last]
            self._vectors[row] = self._vectors[last]
            self._keys[row] = moved
            self._rows[moved] = row
        self._keys.pop()

    def _room_for(self, rows: int, dim: int) -> np.ndarray:
        current = self._vectors
        if current is not None and current.shape[1] != dim:
            raise ValueError(f"embed returned {dim} dimensions, the index holds {current.shape[1]}")
        if current is not None and current.shape[0] >= rows:
            return current
        size = min(
            self.max_entries, max(_MIN_ROWS, rows, 2 * (0 if current is None else len(current)))
        )
        grown = np.zeros((size, dim), dtype=np.float32)
        if current is not None:
            grown[: len(self._keys)] = current[: len(self._keys)]
        return grown
