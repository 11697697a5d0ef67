"""Issue 14, finding 8: a python model pinned by sha256 runs the bytes that were hashed.

The attack: beside the verified ``digits_rules.py`` put ``__pycache__/digits_rules.*.pyc`` compiled
from other code, its header patched to the real source's size and mtime, so ``import`` trusts it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
import yaml

from frugal.config import parse_config
from frugal.errors import ArtifactError
from frugal.runtimes.python import load
from tests.conftest import TEST_INSTANCE, ServerProcess

REAL = """
import joblib

class Digits:
    def __init__(self, model_path):
        self.model = joblib.load(model_path)

    def predict_batch(self, items):
        return [int(d) for d in self.model.predict(items)]

def make(model_path):
    return Digits(model_path)
"""

FORGED = """
class Forged:
    def predict_batch(self, items):
        return [-1 for _ in items]

def make(model_path):
    return Forged()
"""


def forge_pyc(source: Path, forged_source: str) -> Path:
    """A .pyc of ``forged_source`` whose header claims to be compiled from ``source``."""
    stat = source.stat()
    code = compile(forged_source, str(source), "exec")
    data = importlib._bootstrap_external._code_to_timestamp_pyc(  # type: ignore[attr-defined]
        code, int(stat.st_mtime), stat.st_size
    )
    cache = Path(importlib.util.cache_from_source(str(source)))
    cache.parent.mkdir(exist_ok=True)
    cache.write_bytes(data)
    return cache


@pytest.fixture
def pinned(tmp_path: Path, digits_model_file: Path) -> dict[str, Any]:
    """The real module, a forged .pyc that plain import would run, and a config pinning it."""
    folder = tmp_path / "models"
    folder.mkdir()
    source = folder / "digits_rules.py"
    source.write_text(REAL)
    forge_pyc(source, FORGED)
    return {
        "name": "rules",
        "runtime": "python",
        "factory": "digits_rules:make",
        "path": str(source),
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "options": {"model_path": str(digits_model_file)},
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
    }


def test_the_forged_pyc_fools_a_plain_import(pinned: dict[str, Any]) -> None:
    """The attack is real: Python's own import runs the forged bytecode, not the source."""
    folder = str(Path(pinned["path"]).parent)
    script = (f"import sys; sys.path.insert(0, {folder!r}); import digits_rules; "
              "print(type(digits_rules.make(None)).__name__)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "Forged"


def test_the_server_runs_the_verified_source_not_the_forged_pyc(
    tmp_path: Path, pinned: dict[str, Any], digits: Any, digits_model_file: Path
) -> None:
    """A real `frugal serve` answers with the pinned source's predictions despite the .pyc."""
    config = {
        "instance": TEST_INSTANCE,
        "models": [pinned],
        "endpoints": [{"name": "rules", "model": "rules"}],
        "ledger": {"path": str(tmp_path / "ledger.db")},
    }
    (tmp_path / "frugal.yaml").write_text(yaml.safe_dump(config))
    x, _ = digits
    expected = joblib.load(digits_model_file).predict(x[1500:1510]).tolist()
    with ServerProcess(tmp_path / "frugal.yaml", "--log-level", "warning") as server:
        response = httpx.post(f"{server.url}/v1/endpoints/rules/predict",
                              json={"instances": x[1500:1510].tolist()}, timeout=30)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected
    assert -1 not in expected


def test_a_changed_source_is_refused_even_with_a_matching_pyc(
    tmp_path: Path, pinned: dict[str, Any]
) -> None:
    """Editing the source after pinning is refused, whatever bytecode sits beside it."""
    source = Path(pinned["path"])
    source.write_text(REAL.replace("int(d)", "int(d) + 1"))
    forge_pyc(source, FORGED)
    config = parse_config({"instance": TEST_INSTANCE, "models": [pinned]}, base_dir=tmp_path)
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load(config.models[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factory": "other_module:make"}, "is the file of module 'digits_rules'"),
        ({"path": "DIR"}, "`sha256` pins one file, but `path` is not a file"),
        ({"path": None}, "`sha256` pins one file, but `path` is not set"),
    ],
)
def test_a_pin_that_cannot_cover_the_loaded_code_is_refused(
    tmp_path: Path, pinned: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    """A sha256 over one file never vouches for another module or a whole folder."""
    model = pinned | change
    if model["path"] == "DIR":
        model["path"] = str(Path(pinned["path"]).parent)
    config = parse_config({"instance": TEST_INSTANCE, "models": [model]}, base_dir=tmp_path)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        load(config.models[0])
