"""A fresh venv with only numpy and onnxruntime, made once per session: where bundles must run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import frugal_edge
for absent in ("frugal", "sklearn", "pydantic", "tokenizers", "torch"):
    try:
        __import__(absent)
    except ImportError:
        pass
    else:
        raise SystemExit(absent + " is importable: not a fresh venv")
rows = json.load(open(sys.argv[2]))
print(json.dumps(frugal_edge.EdgeModel(sys.argv[1]).predict(rows)))
"""


@pytest.fixture(scope="session")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Its python; numpy and onnxruntime pinned to this install's versions, from PyPI."""
    venv = tmp_path_factory.mktemp("edge-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pins = [f"numpy=={np.__version__}", f"onnxruntime=={onnxruntime.__version__}"]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *pins], check=True, timeout=900)
    return python


def run_in_venv(python: Path, bundle: Path, rows: list[Any], tmp_path: Path) -> Any:
    """EdgeModel(bundle).predict(rows) run by that python, from a folder with no frugal in it."""
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    ran = subprocess.run([str(python), "-c", _SCRIPT, str(bundle), str(tmp_path / "rows.json")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)
