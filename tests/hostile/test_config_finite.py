"""frugal.yaml floats must be finite: `.inf` and `.nan` are refused naming the field (issue 14)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from frugal.cli import main
from frugal.config import parse_config
from frugal.errors import ConfigError
from tests.conftest import digits_config


def _with(data: dict[str, Any], path: str, raw: str) -> str:
    """``data`` as YAML text with the value at dotted ``path`` replaced by the YAML ``raw``."""
    data = copy.deepcopy(data)  # digits_config shares TEST_INSTANCE: never edit it in place
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = "__RAW__"
    return yaml.safe_dump(data).replace("__RAW__", raw)


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("models.0.batching.linger_ms", ".inf", "models[0].batching.linger_ms"),
        ("models.0.batching.timeout_ms", ".nan", "models[0].batching.timeout_ms"),
        ("instance.price_usd_per_hour", ".inf", "instance.price_usd_per_hour"),
        ("models.0.batching.max_wait_ms", "-.inf", "models[0].batching.max_wait_ms"),
        ("ledger.flush_interval_ms", ".NaN", "ledger.flush_interval_ms"),
    ],
)
def test_validate_refuses_a_non_finite_float_naming_the_field(
    digits_model_file: Path, tmp_path: Path, path: str, raw: str, field: str
) -> None:
    """`frugal validate` exits 2 naming the field of an infinite or NaN float, no traceback."""
    config = tmp_path / "frugal.yaml"
    config.write_text(_with(digits_config(digits_model_file, tmp_path), path, raw))
    result = CliRunner().invoke(main, ["validate", str(config)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert f"error: {config}: {field}: Input should be a finite number" in result.output
    assert "Traceback" not in result.output


def test_a_price_of_infinity_in_an_upstream_is_refused(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """A nested section (an upstream's token price) refuses infinity with its full path."""
    data = digits_config(digits_model_file, tmp_path)
    data["models"].append({"name": "gpt", "runtime": "openai", "upstream": {
        "base_url": "https://api.example.com/v1", "model": "gpt-4o-mini",
        "output_usd_per_1m": float("inf")}})  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        parse_config(data)
    assert refused.value.field == "models[1].upstream.output_usd_per_1m"
