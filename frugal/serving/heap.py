"""Start-up's objects out of the cyclic garbage collector's way, once the server is ready.

Why: a ready server holds over a hundred thousand long-lived objects it built at start-up
(scikit-learn, SciPy, NumPy, pydantic, the models: ~130,000 for W1), and each full collection
walks all of them. Under load the
requests' short-lived containers trigger one every second or so: on the 2-core VM, W1 at 64
connections, 13 full collections in 10 s took 65 ms each, which was the p99 (72 ms), and 8% of
the CPU. ``gc.freeze()`` moves what exists now to a permanent generation the collector skips
(the standard library's advice for long-running servers, and for forked workers); what requests
allocate later is collected as before. Objects frozen here that later become cyclic garbage are
never freed: start-up's objects live as long as the process anyway.

The young generation's threshold goes up too (700 to ``YOUNG_THRESHOLD``). CPython counts a
young collection due when that many more container objects are alive than at the last one, and
a busy server's live set swings by more than 700 (the open requests' futures, coroutines and
records, the ledger rows queued for the writer) without making garbage: driving the app
in-process, W1 at 64 tasks, 1.9 young collections per 1,000 answers freed nothing (0 objects),
nor did those among 10,000 400s or 404s each, and each walked every young object still alive
(building a batch's 32 outcomes, where they mostly landed, took 80 us of CPU with the collector
on and 10 us with it off). Measured on the 2-core VM, W1 at 64 connections, 8 s a point, alternated
pairs of server CPU per request: 700 -> 10,000 125 -> 118 and 135 -> 131 us, 10,000 -> 100,000
128 -> 123 and 126 -> 115 us. Cyclic garbage, where some code makes it, is still collected: at
most 100,000 objects later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000  # net new container objects between young passes (CPython: 700)


def freeze_startup_heap() -> int:
    """Collect once (start-up's own garbage should not be kept for ever), then freeze what is
    left and space out young collections; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    return gc.get_freeze_count()


def young_threshold() -> int:
    return gc.get_threshold()[0]


def frozen_objects() -> int:
    return gc.get_freeze_count()


__all__ = ["YOUNG_THRESHOLD", "freeze_startup_heap", "frozen_objects", "young_threshold"]
