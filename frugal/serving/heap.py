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
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once (start-up's own garbage should not be kept for ever), then freeze what is
    left; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def frozen_objects() -> int:
    return gc.get_freeze_count()


__all__ = ["freeze_startup_heap", "frozen_objects"]
