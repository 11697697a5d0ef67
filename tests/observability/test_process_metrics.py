"""Process memory and GPU metrics: RSS from a real server, GPUs skipped cleanly without one."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from frugal.config import parse_config
from frugal.observability.process_metrics import GpuCollector, watch_gpus
from tests.conftest import digits_config


def require_pynvml() -> Any:
    """nvidia-ml-py (the gpu extra), or skip (fail in CI, where scripts/install adds it)."""
    try:
        import pynvml
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("nvidia-ml-py is not installed: scripts/install sets it up in CI")
        pytest.skip("nvidia-ml-py is not installed (pip install 'frugal[gpu]')")
    return pynvml


def samples(text: str, name: str) -> list[Any]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_a_live_server_exports_its_resident_memory(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """process_resident_memory_bytes (prometheus_client's ProcessCollector) is above 0."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    [rss] = samples(httpx.get(f"{server.url}/metrics").text, "process_resident_memory_bytes")
    assert rss.value > 10_000_000  # an interpreter with numpy and scikit-learn loaded


def test_gpus_are_exported_where_nvml_starts_and_skipped_with_one_debug_line_where_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No GPU (NVML fails to start): nothing registered, one debug line; a GPU: its memory."""
    pynvml = require_pynvml()
    try:
        pynvml.nvmlInit()
        started = True
    except pynvml.NVMLError:
        started = False
    registry = CollectorRegistry()
    with caplog.at_level(logging.DEBUG, logger="frugal.observability"):
        assert watch_gpus(registry) is started
    text = generate_latest(registry).decode()
    if started:  # a machine with the driver: one series per GPU it has
        count = pynvml.nvmlDeviceGetCount()
        total = samples(text, "frugal_gpu_memory_total_bytes")
        assert len(total) == count and all(s.value > 0 for s in total)
        assert len(samples(text, "frugal_gpu_utilization_ratio")) == count
        return
    assert "frugal_gpu" not in text
    [line] = [r for r in caplog.records if r.name == "frugal.observability"]
    assert line.levelno == logging.DEBUG and "NVML did not start" in line.getMessage()


def test_a_gpu_collector_whose_nvml_fails_at_scrape_yields_empty_families() -> None:
    """NVML calls that raise (here: NVML never started) give empty GPU families, no error."""
    pynvml = require_pynvml()
    registry = CollectorRegistry()
    registry.register(GpuCollector(pynvml))
    text = generate_latest(registry).decode()
    assert "# TYPE frugal_gpu_memory_used_bytes gauge" in text
    assert samples(text, "frugal_gpu_memory_used_bytes") == []
    assert samples(text, "frugal_gpu_utilization_ratio") == []
