"""executor: process: the model runs in worker processes and answers as it would in a thread."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.config import ModelConfig, parse_config
from frugal.errors import ArtifactError
from frugal.runtimes import load_model
from tests.conftest import TEST_INSTANCE


class PurePython:
    """Holds the GIL while it computes (a pure-Python loop), and says which process ran it."""

    def predict_batch(self, items: Sequence[Any]) -> list[Any]:
        if any(item < 0 for item in items):
            raise ValueError("negative input")
        return [{"sum": sum(range(int(item))), "pid": os.getpid()} for item in items]


def make_pure_python() -> PurePython:
    return PurePython()


def make_broken() -> PurePython:
    raise RuntimeError("weights missing")


def config(**model: Any) -> dict[str, Any]:
    return {
        "name": "pure", "runtime": "python", "executor": "process",
        "factory": "tests.runtimes.test_process:make_pure_python",
        "batching": {"workers": 2, "timeout_ms": 60000}, **model,
    }  # fmt: skip


def test_process_model_answers_from_worker_processes(serve: Any, tmp_path: Path) -> None:
    """Answers come from other processes, failing items still fail alone, shutdown is clean."""
    server = serve(parse_config({
        "instance": TEST_INSTANCE, "models": [config()],
        "endpoints": [{"name": "pure", "model": "pure"}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }))  # fmt: skip
    r = httpx.post(f"{server.url}/v1/endpoints/pure/predict",
                   json={"instances": [10, -1, 1000]}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"][0]["sum"] == 45 and body["predictions"][2]["sum"] == 499500
    assert body["predictions"][1] is None
    assert body["errors"] == [{"instance": 1, "error": body["errors"][0]["error"]}]
    assert "negative input" in body["errors"][0]["error"]
    assert body["predictions"][0]["pid"] != os.getpid()
    server.__exit__()


def test_a_model_that_cannot_load_in_its_process_is_refused() -> None:
    """A factory that raises in the worker process refuses the model with an ArtifactError."""
    broken = ModelConfig.model_validate(config(factory="tests.runtimes.test_process:make_broken"))
    with pytest.raises(ArtifactError, match="worker process could not load"):
        load_model(broken)
