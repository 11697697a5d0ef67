"""The machine under the process on ``/metrics``: GPU memory and utilization, via NVML.

Process memory needs nothing here: prometheus_client's ProcessCollector (metrics.py) already
exports ``process_resident_memory_bytes`` and ``process_virtual_memory_bytes`` on Linux.

GPUs are read with ``nvidia-ml-py`` (the ``gpu`` extra), imported only when a registry asks.
Without the package, without a GPU or its driver, no GPU metric is exported and one debug line
says why: a CPU server is not misconfigured for lacking one. A GPU that stops answering at
scrape time (a reset, a lost driver) gives empty families, never a failed scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("frugal.observability")


def watch_gpus(registry: CollectorRegistry) -> bool:
    """Registers the GPU collector when NVML starts; returns whether it did."""
    try:
        import pynvml
    except ImportError:
        log.debug("no GPU metrics: nvidia-ml-py is not installed (pip install 'frugal[gpu]')")
        return False
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.debug("no GPU metrics: NVML did not start (%s)", exc)
        return False
    registry.register(GpuCollector(pynvml))
    return True


class GpuCollector(Collector):
    """Each GPU's memory and utilization, read from NVML when scraped (a few microseconds)."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml  # the pynvml module, started by watch_gpus

    def collect(self) -> Iterable[GaugeMetricFamily]:
        used = GaugeMetricFamily(
            "frugal_gpu_memory_used_bytes", "GPU memory in use (all processes).", labels=["gpu"]
        )
        total = GaugeMetricFamily(
            "frugal_gpu_memory_total_bytes", "GPU memory installed.", labels=["gpu"]
        )
        busy = GaugeMetricFamily(
            "frugal_gpu_utilization_ratio", "Share of the last sample period (about 1 s) in "
            "which a kernel ran on the GPU, 0 to 1.", labels=["gpu"],
        )  # fmt: skip
        for index, memory, utilization in self._read():
            used.add_metric([str(index)], memory.used)
            total.add_metric([str(index)], memory.total)
            busy.add_metric([str(index)], utilization.gpu / 100)
        yield used
        yield total
        yield busy

    def _read(self) -> list[tuple[int, Any, Any]]:
        nvml = self._nvml
        try:
            readings = []
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                readings.append((index, nvml.nvmlDeviceGetMemoryInfo(handle),
                                 nvml.nvmlDeviceGetUtilizationRates(handle)))  # fmt: skip
            return readings
        except nvml.NVMLError as exc:
            log.debug("GPU metrics not read this scrape: %s", exc)
            return []


__all__ = ["GpuCollector", "watch_gpus"]
