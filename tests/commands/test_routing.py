"""`frugal calibrate` on a machine without matplotlib: it plots only when asked (--plot), and
then says what to install before it measures anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.optimize.cascades import train_digits_cascade, write_config

ROOT = Path(__file__).resolve().parents[2]
# A None in sys.modules makes `import matplotlib` raise ImportError, as a missing install does.
WITHOUT_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; from frugal.cli import main; "
    "main(sys.argv[1:], prog_name='frugal')"
)


def calibrate_without_matplotlib(*args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MATPLOTLIB, "calibrate", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = train_digits_cascade(tmp_path_factory.mktemp("digits-no-plot"))
    write_config(folder, 'confidence: ">= 0.92"', features=64)
    return folder


def test_calibrate_writes_out_and_config_without_matplotlib(digits: Path, tmp_path: Path) -> None:
    """No --plot and no matplotlib: exit 0, --out and --write done, no PNG drawn."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64, name="write.yaml")
    out = tmp_path / "c.json"
    done = calibrate_without_matplotlib(config, "--endpoint", "cascade", "--data",
                                        digits / "data.npz", "--max-drop", "0.01",
                                        "--out", out, "--write")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (threshold,) = json.loads(out.read_text())["chosen"]["calibration"]["thresholds"]
    assert f'">= {threshold!r}"' in config.read_text()
    assert f"wrote the threshold(s) into {config}" in done.stdout
    assert list(digits.glob("*.png")) == [] and list(tmp_path.glob("*.png")) == []


def test_plot_without_matplotlib_exits_2_before_measuring(digits: Path, tmp_path: Path) -> None:
    """--plot and no matplotlib: exit 2 with the install hint, before any tier runs (no table,
    no --out)."""
    out = tmp_path / "c.json"
    done = calibrate_without_matplotlib(digits / "frugal.yaml", "--endpoint", "cascade",
                                        "--data", digits / "data.npz", "--out", out,
                                        "--plot", tmp_path / "p.png")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "error: --plot needs matplotlib" in output
    assert "hint: pip install 'frugal[plot]'" in output
    assert "Traceback" not in output
    assert "calibrate cascade:" not in output and not out.exists()
