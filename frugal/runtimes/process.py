"""A model that runs in worker processes, for runtimes that hold the GIL while they compute.

``executor: process`` in frugal.yaml. Each of the model's ``batching.workers`` processes loads
(and verifies) the model once; a batch travels there pickled and its answers come back. The
batcher still calls ``predict_batch`` from a slot thread, which waits for the process: the slot
stays held while the batch runs, so the cost model is unchanged, and the pickling is priced as
busy time, as it should be. Processes are spawned, not forked: the server has threads.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.runtimes.base import Model, verify_artifact
from frugal.types import Item, ModelRef, Prediction

_model: Model | None = None  # the model of this worker process


def _load_in_worker(config_json: str) -> None:
    global _model
    from frugal.runtimes.loader import load_model

    config = ModelConfig.model_validate_json(config_json)
    _model = load_model(config.model_copy(update={"executor": "thread"}))


def _predict_in_worker(items: Sequence[Item]) -> list[Prediction]:
    assert _model is not None, "the worker's initializer loads the model"
    return list(_model.predict_batch(items))


def _ref_in_worker() -> ModelRef:
    assert _model is not None, "the worker's initializer loads the model"
    return _model.ref


class ProcessModel:
    """Forwards each batch to one of ``workers`` processes that hold the real model."""

    def __init__(self, config: ModelConfig) -> None:
        if config.path is not None and config.path.is_file():
            verify_artifact(config)  # refuse a bad file here, before any process starts
        self.ref = ModelRef(config.name, config.version, config.sha256)
        self._pool = ProcessPoolExecutor(
            max_workers=config.batching.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_in_worker,
            initargs=(config.model_dump_json(),),
        )
        try:
            self._pool.submit(_ref_in_worker).result()
        except BrokenProcessPool as exc:
            self._pool.shutdown(cancel_futures=True)
            raise ArtifactError(
                f"model {config.key}: its worker process could not load it",
                hint="run `frugal validate` without executor: process to see the load error",
            ) from exc

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        return self._pool.submit(_predict_in_worker, list(items)).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


__all__ = ["ProcessModel"]
