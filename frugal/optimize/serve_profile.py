"""``frugal profile --http``: a real ``frugal serve`` on the model, driven at rising concurrency.

The server runs as its own process (``python -m frugal serve``) so that its CPU time can be read
apart from the load generator's. It serves a config written for the run: the model as the
target resolved it (file, sha256, runtime options, batching), behind one endpoint with no cache
(repeated sample bodies would be cache hits, which is another lever's saving), its ledger in a
temporary folder (profiling traffic never lands in the real ledger) and no ``auth`` section (it
binds to 127.0.0.1). Everything else on the request path is what production runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from frugal.config import FrugalConfig, TensorSpec
from frugal.errors import FrugalError, InvalidInput
from frugal.optimize.endtoend import HttpLevel, HttpProfile, OpenLevel
from frugal.optimize.loadgen import LoadResult, cpu_seconds, drive, run_async
from frugal.optimize.open_loop import Replay, poisson_arrivals, replay
from frugal.optimize.profile import cpu_model
from frugal.optimize.server_process import running_server
from frugal.optimize.target import Target
from frugal.types import Item

DEFAULT_CONCURRENCY = (1, 4, 16, 64)
CLIENT = "frugal.optimize.loadgen: asyncio HTTP/1.1 keep-alive, closed loop"
_PLACEHOLDER_INSTANCE = {"price_usd_per_hour": 1.0, "slots": 1}  # costs of this run are not read


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The generated config and what to send to it."""

    config_path: Path
    path: str  # URL path of the endpoint
    bodies: list[bytes]
    max_batch_size: int
    max_wait_ms: float


def instance_json(item: Item) -> Any:
    """One item as an element of ``instances`` in the simple JSON protocol."""
    if isinstance(item, dict):
        values = {name: instance_json(v) for name, v in item.items()}
        return next(iter(values.values())) if len(values) == 1 else values
    if hasattr(item, "tolist"):
        return item.tolist()
    return item


def served_config(
    target: Target,
    inputs: Sequence[TensorSpec],
    items: Sequence[Item],
    folder: Path,
    source: FrugalConfig | None = None,
) -> ServedModel:
    """Write the run's frugal.yaml into ``folder`` (rules in the module docstring)."""
    model = target.config
    update: dict[str, Any] = {}
    if model.path is not None:
        update["path"] = model.path.resolve()
    if not model.inputs:
        update["inputs"] = list(inputs)
    model = model.model_copy(update=update)
    endpoint = model.name
    data: dict[str, Any] = {
        "instance": (
            source.instance.model_dump(mode="json", exclude_none=True)
            if source is not None
            else _PLACEHOLDER_INSTANCE
        ),
        "models": [model.model_dump(mode="json", exclude_none=True)],
        "endpoints": [{"name": endpoint, "model": model.key}],
        "ledger": {"path": str(folder / "ledger.db")},
    }
    if source is not None:
        ledger = source.ledger.model_dump(mode="json", exclude_none=True)
        data["ledger"] = {**ledger, "path": str(folder / "ledger.db")}
        data["server"] = source.server.model_dump(mode="json", exclude_none=True)
    path = folder / "frugal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    bodies = [
        json.dumps({"instances": [instance_json(item)]}, separators=(",", ":")).encode()
        for item in items
    ]
    return ServedModel(
        config_path=path,
        path=f"/v1/endpoints/{endpoint}/predict",
        bodies=bodies,
        max_batch_size=model.batching.max_batch_size,
        max_wait_ms=model.batching.max_wait_ms,
    )


def check_answer(url: str, body: bytes) -> None:
    """One request before the load: a refused sample is a clear error, not a run of 4xx."""
    import httpx

    response = httpx.post(url, content=body, headers={"content-type": "application/json"},
                          timeout=60.0)  # fmt: skip
    if response.status_code != 200:
        raise InvalidInput(
            f"the server answered {response.status_code} to a sample request: "
            f"{response.text[:300]}",
            hint="check --data against the model's inputs",
        )


def to_level(result: LoadResult) -> HttpLevel:
    assert result.server_cpu_s_per_request is not None and result.server_cores_busy is not None
    return HttpLevel(
        concurrency=result.concurrency,
        seconds=result.seconds,
        requests=result.requests,
        errors=result.errors,
        req_per_s=result.req_per_s,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        mean_ms=result.mean_ms,
        server_cpu_s_per_request=result.server_cpu_s_per_request,
        server_cores_busy=result.server_cores_busy,
        client_cpu_s_per_request=result.client_cpu_s / result.requests,
    )


def to_open_level(rate_per_s: float, result: Replay) -> OpenLevel:
    """One open-loop replay as a level (percentiles 0 when nothing was answered)."""
    latency, from_send, lag = result.latency_ms(), result.from_send_ms(), result.send_lag_ms()
    answered = int(latency.size)

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if values.size else 0.0

    server_cpu = result.server_cpu_s or 0.0
    return OpenLevel(
        rate_per_s=rate_per_s,
        seconds=result.seconds,
        requests=answered,
        errors=result.errors,
        req_per_s=answered / result.seconds,
        p50_ms=pct(latency, 50),
        p99_ms=pct(latency, 99),
        mean_ms=float(latency.mean()) if answered else 0.0,
        p50_ms_from_send=pct(from_send, 50),
        p99_ms_from_send=pct(from_send, 99),
        send_lag_p99_ms=pct(lag, 99),
        server_cpu_s_per_request=server_cpu / answered if answered else 0.0,
        server_cores_busy=server_cpu / result.seconds,
        client_cpu_s_per_request=result.client_cpu_s / max(answered, 1),
    )


def profile_http(
    served: ServedModel,
    *,
    concurrency: Sequence[int] = DEFAULT_CONCURRENCY,
    seconds: float = 5.0,
    warmup_s: float | None = None,
    workers: int = 1,
    rates: Sequence[float] = (),
    seed: int = 0,
    progress: bool = True,
) -> HttpProfile:
    """Start the server, drive each concurrency in turn, then each open-loop rate (Poisson
    arrivals for ``seconds``, seeded), stop it; the levels as a section."""
    from frugal.optimize.profile import _progress

    levels: list[HttpLevel] = []
    open_levels: list[OpenLevel] = []
    warmup = min(1.0, seconds / 4) if warmup_s is None else warmup_s
    cpu_seconds(os.getpid())  # no /proc (not Linux): say so before starting anything
    with running_server(served.config_path, workers=workers) as (base, pid):
        url = base + served.path
        check_answer(url, served.bodies[0])
        with _progress(progress) as bar:
            total = len(concurrency) + len(rates)
            task = bar.add_task("driving the server", total=total) if bar else None
            for c in concurrency:
                if bar is not None and task is not None:
                    bar.update(task, description=f"end to end: {c} concurrent for {seconds:g} s")
                result = run_async(
                    drive(url, served.bodies, c, seconds, warmup_s=warmup, server_pid=pid)
                )
                if result.requests == 0:
                    raise FrugalError(
                        f"no request was answered at concurrency {c} "
                        f"({result.errors} errors in {result.seconds:.1f} s)",
                        hint="lower --concurrency, or raise the model's batching.max_queue",
                    )
                levels.append(to_level(result))
                if bar is not None and task is not None:
                    bar.advance(task)
            for k, rate in enumerate(rates):
                if bar is not None and task is not None:
                    bar.update(task, description=f"open loop: {rate:g} req/s for {seconds:g} s")
                # Unmeasured first: the server's and the pool's connections warm at this rate.
                warm = poisson_arrivals(rate, warmup, seed + 1000 + k) if warmup > 0 else None
                if warm is not None and warm.size:
                    run_async(replay(url, served.bodies, warm))
                arrivals = poisson_arrivals(rate, seconds, seed + k)
                replayed = run_async(replay(url, served.bodies, arrivals, server_pid=pid))
                open_levels.append(to_open_level(rate, replayed))
                if bar is not None and task is not None:
                    bar.advance(task)
    return HttpProfile(
        levels=tuple(levels),
        path=served.path,
        server_workers=workers,
        max_batch_size=served.max_batch_size,
        max_wait_ms=served.max_wait_ms,
        cpu_model=cpu_model(),
        cpu_cores=len(os.sched_getaffinity(0)),
        client=CLIENT,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        open_levels=tuple(open_levels),
    )


@contextmanager
def run_folder() -> Iterator[Path]:
    """A temporary folder for the run's config, ledger and server log."""
    with tempfile.TemporaryDirectory(prefix="frugal-profile-http-") as folder:
        yield Path(folder)


__all__ = [
    "CLIENT",
    "DEFAULT_CONCURRENCY",
    "ServedModel",
    "check_answer",
    "instance_json",
    "profile_http",
    "run_folder",
    "running_server",
    "served_config",
    "to_open_level",
]
