"""The server's own work, measured: CPU seconds that were not the model's, and their price.

A request costs its share of its batches' busy time (the model) plus its share of everything
else the process did to answer it: HTTP parsing, JSON, admission, the cache lookup, routing,
the ledger and metrics. On a small model the second part is most of the bill, so it is
measured, not estimated: each interval, the CPU time the operating system counted for this
process's own threads (the event loop, the ledger writer, asyncio's worker threads, ...), that
is every Python thread but the model's slot threads. Threads that model libraries start
themselves (onnxruntime, torch and BLAS pools) are not Python threads, so they stay the model's.

The price of a CPU-second is the machine's price per second over its vCPUs. The model's slots
and these CPUs are the same machine: when the model held every slot for the whole interval, the
server's work ran in time the model's price already pays for, so the overhead of an interval is
capped at the billed time its batches left unused. That keeps model + overhead + idle = billed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from frugal.accounting.prices import Pricer

MODEL_THREAD_PREFIX = "frugal-slot"  # the batcher's slot pool: the model's own threads


class CpuClock(Protocol):
    """CPU seconds of the server's own threads since the last call (the first call: since start)."""

    def __call__(self) -> float: ...


class ThreadCpuClock:
    """Sums the OS's per-thread CPU clocks of every Python thread but the model's.

    Linux and most Unixes give each thread a CPU clock (``pthread_getcpuclockid``); where there is
    none, only the calling thread (the event loop, which does nearly all of the server's work) is
    counted, with ``time.thread_time``.
    """

    def __init__(self, model_thread_prefix: str = MODEL_THREAD_PREFIX) -> None:
        self._prefix = model_thread_prefix
        self._last: dict[int, float] = {}
        self._per_thread = hasattr(time, "pthread_getcpuclockid")
        self._own_last = time.thread_time()

    def __call__(self) -> float:
        if not self._per_thread:
            now = time.thread_time()
            spent, self._own_last = now - self._own_last, now
            return spent
        spent = 0.0
        seen: dict[int, float] = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or thread.name.startswith(self._prefix):
                continue
            try:
                cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
            except (OSError, OverflowError):  # the thread ended between enumerate and now
                continue
            seen[ident] = cpu
            spent += cpu - self._last.get(ident, 0.0)
        self._last = seen  # threads that ended are forgotten (their last slice is lost)
        return max(0.0, spent)


class OverheadMeter:
    """Turns each interval's measured server CPU into dollars, within what the interval billed."""

    def __init__(
        self,
        pricer: Pricer,
        clock: CpuClock | None = None,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pricer = pricer
        self._clock = clock if clock is not None else ThreadCpuClock()
        self._wall = wall
        self._started = wall()
        self._clock()  # start counting from now
        self.last_cpu_s = 0.0  # the last interval's, for the metrics

    def close_interval(self, model_usd: float) -> float:
        """The overhead dollars of the interval since the last call; ``model_usd`` is what the
        batches that ran in it were priced (their slot time)."""
        now = self._wall()
        wall_s, self._started = now - self._started, now
        cpu_s = self.last_cpu_s = self._clock()
        unused_usd = max(0.0, self.pricer.billed_usd(wall_s) - model_usd)
        return min(self.pricer.cpu_usd(cpu_s), unused_usd)


__all__ = ["MODEL_THREAD_PREFIX", "CpuClock", "OverheadMeter", "ThreadCpuClock"]
