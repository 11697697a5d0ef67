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

The young generation's threshold goes up too (700 allocations to ``YOUNG_THRESHOLD``): a young
collection walks the young objects still alive (the open requests' futures, coroutines and
records: a few thousand at 64 connections), not those reference counting already freed, so
each costs about the same at either threshold while there are ~14x fewer of them. Measured on
the 2-core VM, W1 at 64 connections, 8 s a point, two alternated pairs: 125 -> 118 and
135 -> 131 us of server CPU a request.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections once ready (CPython: 700)


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
