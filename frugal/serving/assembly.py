"""Start-up in one place: what `frugal serve`, `frugal validate` and the app's lifespan build.

Two steps, because validating must not write anything: ``assemble`` checks prices, scorers and
every model artifact (and loads them); ``start_engine`` then opens the ledger (a run row is
written), and builds the recorder, batchers, routers and caches around the loaded models.
Both block: the app runs them in a thread, off the event loop.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson

from frugal.access import read_audit_key
from frugal.accounting import (
    Ledger,
    LedgerStats,
    Pricer,
    QueuedLedger,
    build_ledger,
    check_ledger_url,
    ledger_location,
    resolve_pricer,
)
from frugal.accounting.budgets import BudgetBook
from frugal.accounting.overhead import MODEL_THREAD_PREFIX
from frugal.cache import CacheStage, build_store
from frugal.cache.semantic import SemanticIndex
from frugal.config import CacheConfig, FrugalConfig
from frugal.errors import ConfigError
from frugal.observability import (
    BatcherState,
    CacheState,
    LedgerState,
    RequestLog,
    ServingMetrics,
)
from frugal.observability.priority_metrics import TierCollector, TierQueueState
from frugal.routing import build_llm_cascades
from frugal.routing.drift import DriftMonitor
from frugal.routing.rules import Load, RuleRouter
from frugal.runtimes import InputSchema, Model, load_model
from frugal.runtimes.openai import check_upstream_keys
from frugal.serving.batcher import Batcher
from frugal.serving.controller import build_controller, controlled_latencies
from frugal.serving.drift_check import DriftCheck, DriftEvents
from frugal.serving.engine import Endpoint, Engine
from frugal.serving.model_queue import ModelQueue
from frugal.serving.priority import TierOrder
from frugal.serving.recorder import Recorder
from frugal.serving.route_builder import RouterBuilder
from frugal.serving.route_control import RouteControl


@dataclass(frozen=True, slots=True)
class Assembly:
    """A config checked and its models loaded: nothing written, nothing served yet."""

    config: FrugalConfig
    pricer: Pricer  # this process's share of the machine (``--workers``)
    models: dict[str, Model]  # name:version -> loaded and verified; empty unless ``load``
    started_at: float  # unix seconds before the models loaded: start-up is billed from here


def assemble(
    config: FrugalConfig, *, processes: int = 1, file: str = "", load: bool = True
) -> Assembly:
    """Check what can stop a start: the ledger's and keys' paths, the instance price, LLM
    cascades' scorers, model artifacts.

    ``processes``: the server processes that share the machine (``--workers``).
    """
    started_at = time.time()
    if config.ledger.enabled:
        if config.ledger.url is not None:  # connects once (writing nothing): a bad URL stops here
            check_ledger_url(config.ledger, file=file)
        check_database_path(config.ledger.path, "ledger.path", file)  # the audit log's file
        if config.ledger.audit_key_file is not None:  # serve would read it after the models
            read_audit_key(config.ledger.audit_key_file)
    if config.auth is not None:
        check_database_path(config.auth.keys, "auth.keys", file)
    pricer = resolve_pricer(config.instance, file=file).shared_by(processes)
    build_llm_cascades(config)  # an unimportable scorer of an LLM cascade stops the start here
    models = {m.key: load_model(m) for m in config.local_models} if load else {}
    return Assembly(config, pricer, models, started_at)


def start_engine(
    assembly: Assembly,
    *,
    remote: Mapping[str, ModelQueue] | None = None,
    ledger: Ledger | None = None,
    budgets: BudgetBook | None = None,
) -> Engine:
    """Open the ledger and build the engine around the loaded models.

    ``remote``: model versions whose calls go elsewhere (scale/'s Ray replicas) instead of to a
    batcher here; ``ledger``: a store to book rows in instead of opening ``ledger.path`` (a
    Ray replica's link to the one writer), with its ``budgets``. All absent: the single
    process, as always.
    """
    config, pricer = assembly.config, assembly.pricer
    check_upstream_keys(config.upstream_models)
    remote = remote or {}
    if ledger is None and config.ledger.enabled:
        ledger = build_ledger(config.ledger)  # SQLite, or PostgreSQL with ledger.url
        ledger.open(
            instance=pricer.instance,
            price_usd_per_hour=pricer.price_usd_per_hour,
            slots=pricer.slots,
            started_at=assembly.started_at,
        )
    metrics = ServingMetrics(slots=pricer.slots, price_usd_per_hour=pricer.price_usd_per_hour)
    if isinstance(ledger, QueuedLedger):
        metrics.watch_ledger(functools.partial(ledger_state, ledger))
    if budgets is None and config.auth is not None and isinstance(ledger, QueuedLedger):
        # daily budgets are sums over the ledger
        budgets = BudgetBook(ledger_location(config.ledger), ledger.run_id,
                             password_env=config.ledger.password_env)  # fmt: skip
    recorder = Recorder(pricer, ledger, metrics, budgets=budgets,
                        interval_s=config.ledger.cost_interval_ms / 1000,
                        request_log=RequestLog(config.server.log_sample))  # fmt: skip
    # One thread per slot: a batch holds a slot while it runs (DESIGN.md's cost model).
    slot_pool = ThreadPoolExecutor(pricer.workers, thread_name_prefix=MODEL_THREAD_PREFIX)
    latencies = controlled_latencies(config)  # None: no controller
    on_batch = recorder.batch if latencies is None else latencies.after(recorder.batch)
    priority = config.server.priority
    tiers = TierOrder(priority) if priority is not None else None  # None: FIFO queues
    batchers = {
        m.key: Batcher(
            assembly.models[m.key],
            m.batching,
            slot_pool=slot_pool,
            pricer=pricer,
            on_batch=on_batch,
            tiers=tiers,
        )
        for m in config.local_models
        if m.key not in remote
    }
    queues: dict[str, ModelQueue] = {**batchers, **remote}
    routes = RouteControl(metrics, config.ledger if config.ledger.enabled else None)

    def load_of(model: str) -> Load:
        queue = queues[model]
        return Load(queue.queue_depth, queue.estimated_wait_s)

    events = DriftEvents(metrics, routes.audit)
    endpoints = _endpoints(config, RouterBuilder(config, metrics, routes, load_of), recorder,
                           events)  # fmt: skip
    metrics.watch_caches(lambda: _cache_states(endpoints))
    metrics.watch_batchers(
        lambda: (BatcherState(k, q.queue_depth, q.batch_cost, q.refused) for k, q in queues.items())
    )
    if tiers is not None:
        metrics.registry.register(TierCollector(lambda: _tier_states(batchers)))
    warmup = {
        e.name: read_warmup(e.cache.warmup, f"endpoints[{i}].cache.warmup")
        for i, e in enumerate(config.endpoints)
        if e.cache is not None and e.cache.enabled and e.cache.warmup is not None
    }
    controller = None
    if latencies is not None:
        controller = build_controller(
            config, batchers, latencies, metrics.registry,
            caches={n: e.cache for n, e in endpoints.items() if e.cache is not None},
            routers={n: e.router for n, e in endpoints.items() if isinstance(e.router, RuleRouter)},
        )  # fmt: skip
    return Engine(config, batchers=batchers, endpoints=endpoints, recorder=recorder,
                  routes=routes, slot_pool=slot_pool, warmup=warmup, remote=remote,
                  controller=controller, tiers=tiers)  # fmt: skip


def _tier_states(batchers: dict[str, Batcher]) -> Iterator[TierQueueState]:
    for key, batcher in batchers.items():
        book = batcher.tiers
        if book is None:
            continue
        for rank, tier in enumerate(book.order.tiers):
            yield TierQueueState(key, tier, book.refused[rank], book.wait_buckets[rank],
                                 book.wait_sum_s[rank])  # fmt: skip


def build_engine(config: FrugalConfig, *, processes: int = 1) -> Engine:
    """Both steps at once, for callers that serve in-process (tests, benchmarks)."""
    return start_engine(assemble(config, processes=processes))


def _endpoints(
    config: FrugalConfig, builder: RouterBuilder, recorder: Recorder, events: DriftEvents
) -> dict[str, Endpoint]:
    """Each endpoint of local models with its router, cache and shadow (LLM endpoints are
    served by serving/openai_api.py)."""
    local = {m.key: m for m in config.local_models}
    endpoints: dict[str, Endpoint] = {}
    for index, endpoint in enumerate(config.endpoints):
        if not all(builder.key(ref) in local for ref in endpoint.models):
            continue  # an LLM endpoint
        router = builder.build(endpoint, f"endpoints[{index}].route")
        configs = [local[m] for m in router.models]
        cache = None
        if endpoint.cache is not None and endpoint.cache.enabled:
            store = build_store(endpoint.name, endpoint.cache, data_dir=config.ledger.path.parent)
            cache = CacheStage(
                endpoint.name, endpoint.cache, store, router.models,
                mean_item_cost=recorder.mean_item_cost, semantic=semantic_index(endpoint.cache),
            )  # fmt: skip
        shadow = endpoint.route.shadow if endpoint.route is not None else None
        drift = None
        if endpoint.route is not None and endpoint.route.drift is not None:
            monitor = DriftMonitor(endpoint.name, endpoint.route.drift,
                                   builder.cascades[endpoint.name], events)  # fmt: skip
            drift = DriftCheck(monitor, events, recorder, configs[-1].batching.timeout_ms)
        endpoints[endpoint.name] = Endpoint(
            endpoint.name, router, InputSchema(configs[0].inputs),
            timeout_ms=max(c.batching.timeout_ms for c in configs),
            max_queue=min((c.batching.max_queue, c.key) for c in configs),
            cache=cache, shadow=shadow,
            shadow_model=builder.key(shadow.model) if shadow is not None else "", drift=drift,
        )  # fmt: skip
    return endpoints


def ledger_state(ledger: QueuedLedger) -> LedgerState:
    stats: LedgerStats = ledger.stats()
    return LedgerState(stats.healthy, stats.written, stats.rejected, stats.lost, stats.held)


SQLITE_HEADER = b"SQLite format 3\x00"


def check_database_path(path: Path, field: str, file: str) -> None:
    """Refuse a path that ``frugal serve`` could not open as a SQLite file, writing nothing: so
    ``frugal validate`` says what is wrong instead of the server dying at start.

    The file may be missing (it is created, with its missing folders), or an existing SQLite
    file; either way its folder must be writable, for SQLite's journal files (``-wal``,
    ``-shm``) beside it."""

    def refuse(problem: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{path}: {problem}", field=field, file=file, hint=hint)

    if path.is_dir():
        raise refuse("is a folder, not a file", hint=f"name a file in it, e.g. {path / 'x.db'}")
    if path.exists():
        if not path.is_file():
            raise refuse("is not a regular file")
        if not os.access(path, os.R_OK | os.W_OK):
            raise refuse("this user cannot read and write it", hint="check its owner and mode")
        try:
            with path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise refuse(f"cannot be read: {exc.strerror or exc}") from None
        if header and header != SQLITE_HEADER:
            raise refuse("is not a SQLite database", hint="name a new file, or the one frugal made")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # created at start: check the first
        folder = folder.parent  # folder that exists
    if not folder.is_dir():
        raise refuse(f"{folder} is a file, so no folder can be made there")
    if not _writable(folder):
        raise refuse(
            f"the folder {folder} is not writable by this user",
            hint="SQLite writes its journal files beside the database; pick a writable folder",
        )


def _writable(folder: Path) -> bool:
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
    return not read_only and os.access(folder, os.W_OK | os.X_OK)


def _cache_states(endpoints: dict[str, Endpoint]) -> list[CacheState]:
    states = []
    for name, endpoint in endpoints.items():
        if endpoint.cache is not None:
            s = endpoint.cache.store.stats()
            states.append(CacheState(name, s.entries, s.bytes, s.evictions, s.errors))
    return states


def semantic_index(cache: CacheConfig) -> SemanticIndex | None:
    """A MiniLM-backed nearest-text index when the endpoint's cache asks for one."""
    semantic = cache.semantic
    if semantic is None or not semantic.enabled:
        return None
    try:
        from frugal.runtimes.minilm import make_model
    except ImportError as exc:
        raise ConfigError(
            "semantic caching needs the text extra", hint="pip install 'frugal[text]'"
        ) from exc
    embedder = make_model(backend=semantic.backend)
    return SemanticIndex(
        embedder.embed, threshold=semantic.threshold, max_entries=semantic.max_entries
    )


def read_warmup(path: Path, field: str) -> list[object]:
    """Instances of a warm-up JSONL: one instance a line, as in a request's ``instances``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the warm-up file: {exc}", field=field, file=str(path)
        ) from None
    instances = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            instances.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f"line {number} is not JSON: {exc}", field=field, file=str(path)
            ) from None
    return instances


__all__ = [
    "Assembly",
    "assemble",
    "build_engine",
    "check_database_path",
    "ledger_state",
    "read_warmup",
    "start_engine",
]
