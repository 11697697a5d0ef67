"""Warm-up files, the admin stats route, the `frugal cache` CLI and sampled logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from frugal.cli import main
from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.optimize import free_port
from frugal.serving import build_engine
from tests.conftest import TEST_INSTANCE


def config(tmp_path: Path, **cache: Any) -> Any:
    return parse_config({
        "instance": TEST_INSTANCE,
        "models": [{"name": "m", "runtime": "python",
                    "factory": "tests.cache.test_stage:make_counting"}],
        "endpoints": [{"name": "e", "model": "m", "cache": cache}],
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 10,
                   "cost_interval_ms": 20},
    })  # fmt: skip


def test_warmup_fills_the_cache_before_the_first_request(serve: Any, tmp_path: Path) -> None:
    """Instances in the warm-up file are computed at start-up, so asking for them is a hit."""
    (tmp_path / "warm.jsonl").write_text('"a"\n"b"\n\n"c"\n')
    server = serve(config(tmp_path, warmup=str(tmp_path / "warm.jsonl")))
    r = httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": ["b", "c"]})
    assert r.headers["x-frugal-cache"] == "hit"
    assert r.json()["predictions"] == ["bb", "cc"]


def test_a_bad_warmup_line_names_the_file_and_line(tmp_path: Path) -> None:
    """A warm-up line that is not JSON stops start-up with the file, line and field."""
    (tmp_path / "warm.jsonl").write_text('"a"\n{oops\n')
    with pytest.raises(ConfigError) as error:
        build_engine(config(tmp_path, warmup=str(tmp_path / "warm.jsonl")))
    assert "line 2" in str(error.value) and "warm.jsonl" in str(error.value)
    assert error.value.field == "endpoints[0].cache.warmup"


def test_cache_cli_stats_and_invalidate(serve: Any, tmp_path: Path) -> None:
    """`frugal cache stats` shows hits and entries; `invalidate` empties the cache."""
    server = serve(config(tmp_path))
    for _ in range(2):
        httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": ["z"]})
    stats = httpx.get(f"{server.url}/admin/cache/stats").json()["e"]
    assert (stats["entries"], stats["hits"], stats["misses"]) == (1, 1, 1)
    runner = CliRunner()
    shown = runner.invoke(main, ["cache", "stats", "--url", server.url])
    assert shown.exit_code == 0, shown.output
    assert "50.0%" in shown.output
    cleared = runner.invoke(main, ["cache", "invalidate", "--url", server.url, "--endpoint", "e"])
    assert cleared.exit_code == 0 and "invalidated 1 entries" in cleared.output
    down = runner.invoke(main, ["cache", "stats", "--url", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 2 and "cannot reach" in down.output


def test_sampled_lookups_are_logged(
    serve: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With log_sample 1.0 every lookup logs one line naming its result; 0.0 logs none."""
    server = serve(config(tmp_path, log_sample=1.0))
    with caplog.at_level(logging.INFO, logger="frugal.cache"):
        httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": ["q"]})
        httpx.post(f"{server.url}/v1/endpoints/e/predict", json={"instances": ["q"]})
    lines = [r.getMessage() for r in caplog.records if r.name == "frugal.cache"]
    assert len(lines) == 2
    assert lines[0].startswith("cache miss") and lines[1].startswith("cache hit")


def test_disk_cache_keeps_answers_across_a_restart(serve: Any, tmp_path: Path) -> None:
    """With store: disk, a restarted server answers from the entries the last one wrote."""
    cfg = config(tmp_path, store="disk", path=str(tmp_path / "cache.db"))
    first = serve(cfg)
    assert httpx.post(f"{first.url}/v1/endpoints/e/predict",
                      json={"instances": ["w"]}).headers["x-frugal-cache"] == "miss"  # fmt: skip
    first.__exit__()
    second = serve(cfg)
    r = httpx.post(f"{second.url}/v1/endpoints/e/predict", json={"instances": ["w"]})
    assert r.headers["x-frugal-cache"] == "hit" and r.json()["predictions"] == ["ww"]
