"""What runs inside the Ray Serve replicas: a model version's replica (its runtime and
frugal's own ``Batcher``) and the ingress (frugal's own ASGI app, whose engine sends each
model call to a model replica through a ``DeploymentHandle``).

Batching: frugal's ``Batcher``, not ``@serve.batch``. Both gather concurrent calls into one
``predict_batch``; the Batcher also prices each batch's busy time into the ledger, bisects a
failing batch so one bad item fails alone, refuses by expected wait (a 503 with Retry-After
before any work), answers deadlines, and batches shape-aware for sized models. ``@serve.batch``
would need all of that rebuilt around it, and the single process and Ray would then price and
batch differently: the same code in both is what makes a ledger row mean the same thing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugal.accounting import Pricer, QueuedLedger, build_ledger, ledger_location, resolve_pricer
from frugal.accounting.budgets import BudgetBook
from frugal.accounting.overhead import MODEL_THREAD_PREFIX
from frugal.config import FrugalConfig
from frugal.errors import FrugalError, ModelFailed, Overloaded
from frugal.observability import ServingMetrics
from frugal.runtimes import load_model
from frugal.scale.ray_ledger import ActorLedger, RunInfo
from frugal.scale.ray_wire import (
    WireError,
    WireOutcome,
    error_from_wire,
    error_to_wire,
    outcomes_from_wire,
    outcomes_to_wire,
)
from frugal.serving import Assembly, Batcher, FrugalApp, Recorder, start_engine
from frugal.serving.batcher import REFUSAL_REASONS
from frugal.serving.model_queue import ModelQueue
from frugal.types import BatchStats, Item, ItemOutcome

log = logging.getLogger("frugal.scale")
REPLICA_HEADER = b"x-frugal-replica"  # which ingress replica answered (Ray balances them)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip


def replica_pricer(instance: Pricer, cpus: float) -> Pricer:
    """A replica's share of the instance: ``cpus`` of its vCPUs, priced ``cpus / vCPUs x price``.

    Its slots shrink by the same share, so a slot-second costs what it costs in one process:
    a replica's items are priced like the single server's, and the replicas that sit idle show
    as idle (billed, not allocated) in the run's report.
    """
    if cpus <= 0:
        raise ValueError(f"a replica's cpus must be > 0, not {cpus}")
    share = cpus / instance.cpus
    return Pricer(instance.price_usd_per_hour * share, instance.slots * share, instance.instance,
                  cpus)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """What a replica needs besides the config: its CPUs and the ledger writer (or None)."""

    cpus: float
    writer: Any = None  # the LedgerWriter actor's handle; None: ledger.enabled is false
    ledger_path: str = ""  # the writer's file, as the driver resolved it (budgets read it)


def _ledger_for(
    config: FrugalConfig, spec: ReplicaSpec, pricer: Pricer, started_at: float
) -> ActorLedger | QueuedLedger | None:
    """The replica's run in the one ledger (a new run: the replica's share, from now on).

    With ``ledger.url`` each replica opens the PostgreSQL ledger itself, as a run of its own:
    every node reaches it, so no writer actor stands between. Otherwise its rows go to the one
    writer actor that owns the SQLite file (docs/ray.md, "Which ledger")."""
    if config.ledger.enabled and config.ledger.url is not None:
        ledger = build_ledger(config.ledger)
        ledger.open(instance=pricer.instance, price_usd_per_hour=pricer.price_usd_per_hour,
                    slots=pricer.slots, started_at=started_at)  # fmt: skip
        return ledger
    if spec.writer is None:
        return None
    actor = ActorLedger(spec.writer, RunInfo.new(pricer, started_at),
                        send_interval_s=config.ledger.flush_interval_ms / 1000)  # fmt: skip
    actor.open()
    return actor


async def _close(ledger: ActorLedger | QueuedLedger) -> None:
    """Flush and stamp the run's end, whichever store it is."""
    if isinstance(ledger, QueuedLedger):
        await asyncio.to_thread(ledger.close)
    else:
        await ledger.close()


class ModelReplica:
    """One replica of one model version: the runtime and its Batcher, as in one process."""

    def __init__(self, config: FrugalConfig, model_key: str, spec: ReplicaSpec) -> None:
        started_at = time.time()
        model_config = next(m for m in config.local_models if m.key == model_key)
        self.key = model_key
        pricer = replica_pricer(resolve_pricer(config.instance), spec.cpus)
        model = load_model(model_config)
        metrics = ServingMetrics(slots=pricer.slots, price_usd_per_hour=pricer.price_usd_per_hour)
        # Books this replica's batch rows in its own run; request rows are the ingress's.
        self.ledger = _ledger_for(config, spec, pricer, started_at)
        self.recorder = Recorder(pricer, self.ledger, metrics)
        self._pool = ThreadPoolExecutor(pricer.workers, thread_name_prefix=MODEL_THREAD_PREFIX)
        self.batcher = Batcher(model, model_config.batching, slot_pool=self._pool, pricer=pricer,
                               on_batch=self.recorder.batch)  # fmt: skip
        if isinstance(self.ledger, QueuedLedger):
            self.ledger.mark_ready()  # the model is loaded: start-up ends here

    async def predict(
        self, items: list[Item], deadline_unix: float
    ) -> list[WireOutcome] | WireError:
        """The items' outcomes, or the refusal that queued none.

        ``deadline_unix``: the request's deadline in wall-clock seconds (monotonic clocks
        differ between processes). Wall-clock, not "seconds left when sent": time spent
        reaching this replica (Serve's queue, a cold start from zero replicas) counts, so an
        item that arrives too late is answered 504 without reaching the model."""
        deadline = time.monotonic() + (deadline_unix - time.time())
        try:
            outcomes = await self.batcher.submit(items, deadline).wait()
        except FrugalError as error:
            return error_to_wire(error)
        return outcomes_to_wire(outcomes)

    async def __del__(self) -> None:  # Serve awaits an async __del__ when the replica stops
        await self.batcher.drain()
        await self.recorder.flush()
        if self.ledger is not None:
            await _close(self.ledger)
        self._pool.shutdown(wait=False)


class RemoteQueue:
    """A model version's queue in the ingress whose Batcher runs in a model replica."""

    def __init__(self, key: str, handle: Any) -> None:
        self.key = key
        self._handle = handle
        self.refused = dict.fromkeys(REFUSAL_REASONS, 0)
        self.on_batch: Callable[[BatchStats], None] = lambda stats: None
        self.accepting = True
        self._open = 0  # calls this ingress has in flight
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queue_depth(self) -> int:
        """Calls this ingress is waiting on (the replicas' own queues are theirs to report)."""
        return self._open

    @property
    def estimated_wait_s(self) -> float:
        return 0.0  # the replicas refuse by expected wait themselves

    @property
    def batch_cost(self) -> tuple[float, float] | None:
        return None

    def submit(self, items: Sequence[Item], deadline: float, rank: int = 0) -> _RemoteCall:
        # rank (server.priority) is not sent on: each replica's queue serves its calls FIFO.
        if not self.accepting:
            self.refused["draining"] += 1
            raise Overloaded(f"model {self.key} is shutting down", retry_after_s=1.0)
        return _RemoteCall(self, list(items), deadline)

    def abort_queued(self, error: FrugalError) -> int:
        return 0  # sent items are the replicas' to answer, each within its deadline

    async def drain(self) -> None:
        self.accepting = False
        await self._idle.wait()

    async def call(self, items: list[Item], deadline: float) -> list[ItemOutcome]:
        self._open += 1
        self._idle.clear()
        try:
            deadline_unix = time.time() + (deadline - time.monotonic())
            try:
                reply = await self._handle.predict.remote(items, deadline_unix)
            except Exception as exc:  # the replica died, Serve is shutting down, ...
                raise ModelFailed(f"model {self.key}: its Ray replica failed: {exc}") from exc
        finally:
            self._open -= 1
            if not self._open:
                self._idle.set()
        if isinstance(reply, tuple):  # refused: nothing was queued
            error = error_from_wire(reply)
            if isinstance(error, Overloaded):
                self.refused[_refusal_reason(error)] += 1
            raise error
        outcomes = outcomes_from_wire(reply)
        seen: set[tuple[float, int]] = set()
        for outcome in outcomes:
            stats = outcome.batch
            if stats is not None and (stats.started_at, stats.size) not in seen:
                seen.add((stats.started_at, stats.size))
                self.on_batch(stats)
        return outcomes


def _refusal_reason(error: Overloaded) -> str:
    """Which of the replica batcher's refusals this was (its messages say; see batcher.py)."""
    if "shutting down" in error.message:
        return "draining"
    return "expected_wait" if "would answer" in error.message else "queue_full"


@dataclass(slots=True)
class _RemoteCall:
    queue: RemoteQueue
    items: list[Item]
    deadline: float

    async def wait(self) -> list[ItemOutcome]:
        return await self.queue.call(self.items, self.deadline)


class IngressReplica:
    """One replica of the ingress: frugal's own ASGI app (same routes, headers, errors), its
    engine's model calls going to the model deployments' handles."""

    def __init__(self, config: FrugalConfig, handles: Mapping[str, Any], spec: ReplicaSpec) -> None:
        self.config = config
        self.handles = dict(handles)
        self.spec = spec
        self.started_at = time.time()

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """Called by Serve after the constructor; Serve runs the app's lifespan."""
        config = self.config
        pricer = replica_pricer(resolve_pricer(config.instance), self.spec.cpus)
        remote = {key: RemoteQueue(key, handle) for key, handle in self.handles.items()}
        queues: dict[str, ModelQueue] = dict(remote)
        ledger = _ledger_for(config, self.spec, pricer, self.started_at)
        budgets = None
        if config.auth is not None and ledger is not None:  # as --workers: other runs' rows
            where = (
                ledger_location(config.ledger) if config.ledger.url else Path(self.spec.ledger_path)
            )
            budgets = BudgetBook(where, ledger.run_id, password_env=config.ledger.password_env)
        engine = start_engine(
            Assembly(config, pricer, {}, self.started_at),
            remote=queues, ledger=ledger, budgets=budgets,
        )  # fmt: skip
        for queue in remote.values():  # cache hits save the mean cost the replicas measure
            queue.on_batch = engine.recorder.observe_item_cost
        app = FrugalApp(config, engine=engine, freeze_heap=True)
        # The app closes a store it was given (as in one process); the writer actor's link is
        # closed here once the app's lifespan has ended.
        on_stop = ledger.close if isinstance(ledger, ActorLedger) else None
        return with_replica_header(app.asgi, replica_name(), on_stop=on_stop)


def replica_name() -> str:
    """This replica's id in Serve (host:pid outside a replica)."""
    try:
        from ray import serve

        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:
        return f"{socket.gethostname()}:{os.getpid()}"


def with_replica_header(
    app: ASGIApp, name: str, *, on_stop: Callable[[], Awaitable[None]] | None = None
) -> ASGIApp:
    """Every HTTP response says which ingress replica answered it (``x-frugal-replica``);
    ``on_stop`` runs once the app's lifespan has shut down (the ledger's run ends then)."""
    value = name.encode()

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and on_stop is not None:

            async def send_then_stop(message: Message) -> None:
                if message["type"] == "lifespan.shutdown.complete":
                    await on_stop()
                await send(message)

            await app(scope, receive, send_then_stop)
            return
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REPLICA_HEADER, value)]
            await send(message)

        await app(scope, receive, send_with_header)

    return wrapped


__all__ = [
    "REPLICA_HEADER",
    "IngressReplica",
    "ModelReplica",
    "RemoteQueue",
    "ReplicaSpec",
    "replica_pricer",
]
