"""frugal.yaml's `controller` section: what it accepts, and errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frugal.config import parse_config
from frugal.errors import ConfigError
from tests.conftest import digits_config


def with_controller(model_file: Path, tmp_path: Path, controller: dict[str, Any]) -> Any:
    data = digits_config(model_file, tmp_path, batching={"workers": 2})
    data["endpoints"] = [
        {"name": "digits", "cache": {"ttl_s": 60},
         "route": {"model": "digits", "rules": [
             {"name": "busy", "when": {"queue_depth": "> 0"}, "model": "digits",
              "degraded": True}]}}
    ]  # fmt: skip
    data["controller"] = controller
    return data


GOOD = {
    "interval_s": 0.5,
    "batching": [{"model": "digits", "slo_p99_ms": 50, "max_wait_ms": {"min": 1, "max": 10}}],
    "cache": [{"endpoint": "digits", "ttl_s": {"min": 10, "max": 600}, "staleness_budget_s": 300}],
    "degrade": [{"endpoint": "digits", "rule": "busy", "on_above": 20, "off_below": 2}],
}


def test_a_full_section_parses_and_its_absence_means_no_controller(
    digits_model_file: Path, tmp_path: Path
) -> None:
    config = parse_config(with_controller(digits_model_file, tmp_path, GOOD))
    assert config.controller is not None
    assert config.controller.batching[0].max_wait_ms.max == 10
    assert config.controller.degrade[0].min_on_s == 10  # the default
    assert parse_config(digits_config(digits_model_file, tmp_path)).controller is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"batching": [], "cache": [], "degrade": []}, "controller", "at least one of"),
        ({"window_s": 0.1}, "controller.window_s", "at least interval_s"),
        ({"batching": [{"model": "nope", "slo_p99_ms": 50, "max_wait_ms": {"min": 1, "max": 5}}]},
         "controller.batching[0].model", "no model 'nope'"),
        ({"batching": [{"model": "digits", "slo_p99_ms": 50, "max_wait_ms": {"min": 0, "max": 5}}]},
         "controller.batching[0].max_wait_ms.min", "greater than 0"),
        ({"batching": [{"model": "digits", "slo_p99_ms": 50, "max_wait_ms": {"min": 6, "max": 5}}]},
         "controller.batching[0].max_wait_ms.min", "above max"),
        ({"batching": [{"model": "digits", "slo_p99_ms": 50,
                        "max_wait_ms": {"min": 1, "max": 9000}}]},
         "controller.batching[0].max_wait_ms.max", "past digits:1's batching.timeout_ms (5000)"),
        ({"batching": [{"model": "digits", "slo_p99_ms": 50, "max_wait_ms": {"min": 3, "max": 5}}]},
         "controller.batching[0].max_wait_ms", "batching.max_wait_ms (2), where the controller"),
        ({"batching": [{"model": "digits", "slo_p99_ms": 50, "max_wait_ms": {"min": 1, "max": 5}},
                       {"model": "digits:1", "slo_p99_ms": 9,
                        "max_wait_ms": {"min": 1, "max": 5}}]},
         "controller.batching[1].model", "controlled twice"),
        ({"cache": [{"endpoint": "gone", "ttl_s": {"min": 1, "max": 99}, "staleness_budget_s": 9}]},
         "controller.cache[0].endpoint", "no endpoint 'gone'; declared: digits"),
        ({"cache": [{"endpoint": "digits", "ttl_s": {"min": 90, "max": 99},
                     "staleness_budget_s": 9}]},
         "controller.cache[0].ttl_s", "cache.ttl_s (60), where the controller starts"),
        ({"cache": [{"endpoint": "digits", "ttl_s": {"min": 1, "max": 99},
                     "staleness_budget_s": 9, "lower_below": 0.6}]},
         "controller.cache[0].lower_below", "under raise_above"),
        ({"degrade": [{"endpoint": "digits", "rule": "calm", "on_above": 9, "off_below": 1}]},
         "controller.degrade[0].rule", "no rule 'calm'; its rules: busy"),
        ({"degrade": [{"endpoint": "digits", "rule": "busy", "on_above": 9, "off_below": 9}]},
         "controller.degrade[0].off_below", "under on_above"),
        ({"degrade": [{"endpoint": "digits", "rule": "busy", "signal": "cpu", "on_above": 9,
                       "off_below": 1}]},
         "controller.degrade[0].signal", "'queue_depth' or 'wait_ms'"),
        ({"interval_s": 0}, "controller.interval_s", "greater than or equal to 0.01"),
        ({"typo": 1}, "controller.typo", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_sections_name_the_field(
    digits_model_file: Path, tmp_path: Path, change: dict[str, Any], field: str, message: str
) -> None:
    controller = {**GOOD, **change}
    with pytest.raises(ConfigError) as caught:
        parse_config(with_controller(digits_model_file, tmp_path, controller))
    assert caught.value.field == field
    assert message in str(caught.value)


def test_a_wait_to_control_must_have_an_effect(digits_model_file: Path, tmp_path: Path) -> None:
    """With one worker the batcher never waits max_wait_ms: controlling it is refused."""
    data = with_controller(digits_model_file, tmp_path, GOOD)
    data["models"][0]["batching"]["workers"] = 1
    with pytest.raises(ConfigError, match=r"batching\.workers 1, where max_wait_ms has no effect"):
        parse_config(data)


def test_a_cache_to_control_must_exist(digits_model_file: Path, tmp_path: Path) -> None:
    data = with_controller(digits_model_file, tmp_path, GOOD)
    del data["endpoints"][0]["cache"]
    with pytest.raises(ConfigError, match="has no cache to control") as caught:
        parse_config(data)
    assert caught.value.field == "controller.cache[0].endpoint"
