"""The simulator against a real `frugal serve`: a short trace under capacity, replayed open loop,
is answered in full at the trace's rate, with the cache hits the simulation counts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.optimize.profiles import read_profile
from frugal.scale.simulate import Fleet, Settings, simulate
from frugal.scale.simulate_service import service_model
from frugal.scale.traces import Trace, generate
from tests.conftest import ServerProcess, digits_config, write_config

PROFILE = Path(__file__).parents[2] / "examples" / "cost-gate" / "profiles" / "digits.json"


async def replay(url: str, trace: Trace, rows: np.ndarray) -> tuple[int, int, float]:
    """Send request i at its trace time (open loop); the instance is the key's digits row, so
    equal keys are equal requests. Returns (answered, cache hits, seconds)."""
    answered = hits = 0
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> None:
            nonlocal answered, hits
            key = int(trace.key_ids[i])
            body: dict[str, Any] = {"instances": [rows[key % len(rows)].tolist()]}
            response = await client.post(url, json=body)
            if response.status_code == 200:
                answered += 1
                hits += response.headers.get("x-frugal-cache") == "hit"

        start = time.perf_counter()
        tasks = []
        for i, offset in enumerate(trace.t_s):
            delay = start + float(offset) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule, not a wait for state
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        return answered, hits, time.perf_counter() - start


def test_simulated_and_measured_throughput_and_hits_agree_under_capacity(
    tmp_path: Path, digits_model_file: Path, digits: Any
) -> None:
    trace = generate("steady", rate=40, duration_s=5, seed=1, distinct_keys=60,
                     endpoints=[("digits", 1.0)])  # fmt: skip
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"ttl_s": 600}
    config = write_config(tmp_path, data)
    with ServerProcess(config) as server:
        answered, hits, seconds = asyncio.run(
            replay(f"{server.url}/v1/endpoints/digits/predict", trace, digits[0])
        )
    profile = read_profile(PROFILE)
    sim = simulate(trace, service_model(profile, max_batch_size=32), Fleet(fixed=1),
                   Settings(slo_ms=100, replica_usd_per_hour=0.0446, cache_ttl_s=600))  # fmt: skip
    assert answered == sim.answered == len(trace)
    # Open loop under capacity: both finish when the trace does (the last answer's time aside).
    assert answered / seconds == pytest.approx(sim.answered / sim.duration_s, rel=0.15)
    assert sim.hits > len(trace) / 3  # 60 keys over ~200 requests: mostly repeats
    assert abs(sim.hits - hits) <= 0.03 * len(trace)
