"""Start-up's heap frozen out of the garbage collector's passes in a process of frugal's own."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import httpx

from frugal.serving.heap import YOUNG_THRESHOLD, freeze_startup_heap
from tests.conftest import ServerProcess, digits_config, write_config

FROZEN = re.compile(r"^frugal_gc_frozen_objects (\S+)$", re.MULTILINE)
YOUNG = re.compile(r"^frugal_gc_young_threshold (\S+)$", re.MULTILINE)


def frozen_in(metrics: str) -> float:
    found = FROZEN.search(metrics)
    assert found is not None, "frugal_gc_frozen_objects is not in /metrics"
    return float(found.group(1))


def test_frugal_serve_freezes_what_start_up_built_and_still_answers(
    digits_model_file: Path, tmp_path: Path, digits: Any
) -> None:
    """A real `frugal serve`: once ready, start-up's objects (scikit-learn, NumPy, the model:
    hundreds of thousands) are frozen, /metrics says how many, and requests after it are
    answered right. Frozen once, at start-up: traffic adds nothing to it (a frozen object that
    reference counting frees leaves it, so it may shrink a little)."""
    path = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    x, y = digits
    with ServerProcess(path) as server:
        metrics = httpx.get(f"{server.url}/metrics").text
        before = frozen_in(metrics)
        assert before > 100_000
        young = YOUNG.search(metrics)
        assert young is not None and float(young.group(1)) == YOUNG_THRESHOLD
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(50):
                r = client.post("/v1/endpoints/digits/predict",
                                json={"instances": [x[i].tolist()]})  # fmt: skip
                assert r.status_code == 200
                assert r.json()["predictions"][0] in set(y.tolist())
        after = frozen_in(httpx.get(f"{server.url}/metrics").text)
        assert 0.9 * before <= after <= before


def test_an_app_inside_another_program_freezes_nothing(serve: Any, digits_model_file: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    """The default (a test's server, an embedding program): the host's heap is not frugal's
    to freeze, so the collector keeps all of it, at the host's thresholds."""
    gc.unfreeze()
    server = serve(write_config(tmp_path, digits_config(digits_model_file, tmp_path)))
    metrics = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    assert frozen_in(metrics) == 0
    assert gc.get_freeze_count() == 0
    young = YOUNG.search(metrics)  # nor are its collector's thresholds
    assert young is not None and float(young.group(1)) == gc.get_threshold()[0] < YOUNG_THRESHOLD


def test_freezing_collects_first_and_keeps_later_garbage_collectable() -> None:
    """Start-up's own cyclic garbage is collected before the freeze (not kept for ever), and a
    cycle made after it is still collected."""

    class Node:
        def __init__(self) -> None:
            self.me = self

    collected: list[int] = []
    thresholds = gc.get_threshold()
    try:
        Node()  # a cycle that only the collector frees
        frozen = freeze_startup_heap()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
        # Other threads (a previous test's servers) may free frozen objects meanwhile: the
        # count can only have shrunk since.
        assert 0 < gc.get_freeze_count() <= frozen
        assert not any(type(o) is Node for o in gc.get_objects())  # collected, not frozen
        Node()
        collected.append(gc.collect())
        assert collected[0] >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
