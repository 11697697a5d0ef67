"""calibrate's route half: thresholds chosen from a recording of what each tier did (no model
runs here), and --write's one-value edit of the gate in frugal.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frugal.config import load_config
from frugal.routing.calibrate import TierRecording, choose_thresholds, resolve_cascade
from frugal.routing.sweep import TierRun
from tests.optimize.cascades import invoke, train_digits_cascade, write_config


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_digits_cascade(tmp_path_factory.mktemp("digits-route"))


def test_thresholds_chosen_from_a_recording(digits: Path) -> None:
    """Small is right exactly when its confidence is >= 0.6: with no drop allowed the cheapest
    gate is >= 0.6, half the items escalate, and each pays small's $ plus half large's."""
    cascade = resolve_cascade(write_config(digits, 'confidence: ">= 0.9"', features=64), "cascade")
    n = 10
    scores = np.arange(1, n + 1) / 10  # 0.1 .. 1.0
    nothing = np.zeros(n, dtype=bool)
    small = TierRun("small:1", ">=", scores, scores >= 0.6, nothing, np.full(n, 1e-6))
    large = TierRun("large:1", "", np.full(n, np.nan), ~nothing, nothing, np.full(n, 1e-5))
    recording = TierRecording([small, large], [1e-4, 1e-3], list(range(n)), [None, None])
    result = choose_thresholds(
        cascade, digits / "data.npz", recording, max_drop=0.0, holdout=0, confidence=0
    )
    assert result.chosen is not None and result.chosen.thresholds == (0.6,)
    assert result.chosen.accuracy == 1.0 and result.chosen.escalation_rate == 0.5
    assert result.chosen.usd_per_1k == pytest.approx(1000 * (1e-6 + 0.5 * 1e-5))
    assert result.current["calibration"] is not None  # the config's >= 0.9, replayed
    assert result.current["calibration"].escalation_rate == 0.8
    assert result.holdout_rows.size == 0 and result.chosen_holdout is None


def test_write_changes_only_the_threshold(digits: Path, tmp_path: Path) -> None:
    """--write edits the gate's value in place; every other byte stays, and the config loads."""
    config = write_config(digits, 'confidence: ">= 0.92"', features=64, name="write.yaml")
    before = config.read_text()
    out = tmp_path / "c.json"
    result = invoke("calibrate", config, "--endpoint", "cascade", "--data", digits / "data.npz",
                    "--max-drop", "0.01", "--write", "--out", out,
                    "--plot", tmp_path / "p.png")  # fmt: skip
    assert result.exit_code == 0, result.output
    (threshold,) = json.loads(out.read_text())["chosen"]["calibration"]["thresholds"]
    assert threshold != 0.92
    assert config.read_text() == before.replace('">= 0.92"', f'">= {threshold!r}"')
    loaded = load_config(config)
    route = loaded.endpoints[1].route
    assert route is not None and route.cascade is not None
    gate = route.cascade[0].accept
    assert gate is not None and gate.comparison == (">=", threshold)
