"""The policy controller: an optional task of the server that turns three knobs within the
bounds of frugal.yaml's ``controller`` section (docs/controller.md).

- a model version's ``max_wait_ms``, to keep its p99 under an SLO at the load it sees;
- an endpoint cache's TTL for new entries, from its hit ratio and the age of what it serves;
- one selection rule of an endpoint (e.g. "answer with the small model"), switched on when
  its model's queue passes a depth (or estimated wait) and off once it has drained.

Every ``interval_s`` it closes the readings' window, asks the pure decisions
(controller_decisions.py) and applies what they return, on the event loop and in microseconds:
no model call, no I/O. Every change is one log line (``controller change {json}``) with the
knob, old and new value, the reason and the readings; a counter and a gauge in ``/metrics``;
an audit-log row (actor ``controller``, written off the loop); and one of the recent changes
that ``GET /admin/controller`` lists.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from frugal.access import AuditLog
from frugal.cache import CacheStage
from frugal.config import (
    BatchingControl,
    CacheControl,
    ControllerConfig,
    DegradeControl,
    FrugalConfig,
)
from frugal.observability import ControllerMetrics
from frugal.routing.rules import RuleRouter
from frugal.serving.batcher import Batcher
from frugal.serving.controller_decisions import (
    Move,
    decide_degrade,
    decide_max_wait,
    decide_ttl,
)
from frugal.serving.controller_readings import BatchLatencies, CacheWindow, LatencyWindow

log = logging.getLogger("frugal.controller")
RECENT_CHANGES = 50  # kept for GET /admin/controller; the log and the audit log keep them all
Readings = dict[str, float | int | str | None]


@dataclass(frozen=True, slots=True)
class Change:
    """One move of one knob, and what the controller read when it decided."""

    ts: float  # unix seconds
    knob: str  # max_wait_ms | cache_ttl_s | degrade
    target: str  # a model version, an endpoint, or endpoint/rule
    old: float
    new: float
    reason: str
    readings: Readings = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Knob:
    """A knob's target, bounds and last readings; subclasses read, decide and apply."""

    knob = ""

    def __init__(self, target: str, low: float, high: float, since: float) -> None:
        self.target = target
        self.low, self.high = low, high
        self.changed_at = since  # monotonic: readings older than this are not this value's
        self.readings: Readings = {}

    @property
    def value(self) -> float:
        raise NotImplementedError

    def decide(self, now: float, min_samples: int) -> Move | None:
        raise NotImplementedError

    def apply(self, new: float) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {"knob": self.knob, "target": self.target, "value": self.value,
                "min": self.low, "max": self.high, "readings": self.readings}  # fmt: skip


class _MaxWait(_Knob):
    knob = "max_wait_ms"

    def __init__(
        self, control: BatchingControl, batcher: Batcher, window: LatencyWindow, since: float
    ) -> None:
        super().__init__(batcher.key, control.max_wait_ms.min, control.max_wait_ms.max, since)
        self.control, self.batcher, self.window = control, batcher, window

    @property
    def value(self) -> float:
        return self.batcher.config.max_wait_ms

    def decide(self, now: float, min_samples: int) -> Move | None:
        reading = self.window.reading(self.changed_at)
        self.readings = {"p99_ms": round(reading.p99_ms, 3), "samples": reading.samples,
                         "slo_p99_ms": self.control.slo_p99_ms}  # fmt: skip
        return decide_max_wait(self.value, reading, self.control, min_samples)

    def apply(self, new: float) -> None:
        self.batcher.set_max_wait_ms(new)


class _CacheTtl(_Knob):
    knob = "cache_ttl_s"

    def __init__(
        self, control: CacheControl, stage: CacheStage, window: CacheWindow, since: float
    ) -> None:
        super().__init__(control.endpoint, control.ttl_s.min, control.ttl_s.max, since)
        self.control, self.stage, self.window = control, stage, window

    @property
    def value(self) -> float:
        return self.stage.ttl_s

    def decide(self, now: float, min_samples: int) -> Move | None:
        reading = self.window.reading(self.changed_at)
        age = reading.mean_hit_age_s
        self.readings = {"lookups": reading.lookups, "hit_ratio": round(reading.hit_ratio, 4),
                         "mean_hit_age_s": None if age is None else round(age, 3),
                         "staleness_budget_s": self.control.staleness_budget_s}  # fmt: skip
        return decide_ttl(self.value, reading, self.control, min_samples)

    def apply(self, new: float) -> None:
        self.stage.ttl_s = new


class _Degrade(_Knob):
    knob = "degrade"

    def __init__(
        self, control: DegradeControl, router: RuleRouter, load_of: Batcher, since: float
    ) -> None:
        super().__init__(f"{control.endpoint}/{control.rule}", 0.0, 1.0, since)
        self.control, self.router, self.load_of = control, router, load_of
        router.switch(control.rule, False)  # off until the load says otherwise

    @property
    def value(self) -> float:
        return 1.0 if self.router.is_on(self.control.rule) else 0.0

    def decide(self, now: float, min_samples: int) -> Move | None:
        depth = self.load_of.queue_depth
        wait_ms = 1000 * self.load_of.estimated_wait_s
        signal = depth if self.control.signal == "queue_depth" else wait_ms
        self.readings = {"queue_depth": depth, "wait_ms": round(wait_ms, 3),
                         "load_of": self.load_of.key}  # fmt: skip
        return decide_degrade(bool(self.value), signal, now - self.changed_at, self.control)

    def apply(self, new: float) -> None:
        self.router.switch(self.control.rule, bool(new))


class Controller:
    """Built at start-up when frugal.yaml has a ``controller`` section (serving/assembly.py);
    the app runs ``run`` beside the engine and ``close`` on shutdown."""

    def __init__(
        self,
        config: ControllerConfig,
        *,
        knobs: list[_Knob],
        latencies: BatchLatencies,
        caches: list[CacheWindow],
        metrics: ControllerMetrics,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.knobs = knobs
        self.latencies = latencies
        self.caches = caches
        self.metrics = metrics
        self.audit = audit
        self._clock = clock
        self.changes: deque[Change] = deque(maxlen=RECENT_CHANGES)
        self._writes: set[asyncio.Task[None]] = set()
        for knob in knobs:
            metrics.set_value(knob.knob, knob.target, knob.value)

    @classmethod
    def build(
        cls,
        config: ControllerConfig,
        *,
        batchers: Mapping[str, Batcher],
        caches: Mapping[str, CacheStage],
        routers: Mapping[str, RuleRouter],
        resolve: Callable[[str], str],
        latencies: BatchLatencies,
        metrics: ControllerMetrics,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Controller:
        """``resolve``: a model reference of frugal.yaml -> its served name:version.
        ``latencies`` must already receive the batches (the batchers' ``on_batch``)."""
        now = clock()
        knobs: list[_Knob] = []
        for batching in config.batching:
            batcher = batchers[resolve(batching.model)]
            knobs.append(_MaxWait(batching, batcher, latencies.windows[batcher.key], now))
        windows = []
        for cache in config.cache:
            stage = caches[cache.endpoint]
            windows.append(CacheWindow(stage, config.window_s))
            knobs.append(_CacheTtl(cache, stage, windows[-1], now))
        for degrade in config.degrade:
            router = routers[degrade.endpoint]
            rule = next(r for r in router.rules if r.name == degrade.rule)
            knobs.append(_Degrade(degrade, router, batchers[rule.load_of], now))
        return cls(config, knobs=knobs, latencies=latencies, caches=windows, metrics=metrics,
                   audit=audit, clock=clock)  # fmt: skip

    # ---- deciding ----------------------------------------------------------------------------

    def tick(self) -> list[Change]:
        """Close the window, decide every knob, apply and record each move; returns them."""
        now = self._clock()
        for window in self.latencies.windows.values():
            window.close(now)
        for cache in self.caches:
            cache.close(now)
        made = []
        for knob in self.knobs:
            move = knob.decide(now, self.config.min_samples)
            if move is None:
                continue
            old = knob.value
            new = min(knob.high, max(knob.low, move.new))  # the decisions keep to it; so do we
            if math.isclose(new, old):
                continue
            knob.apply(new)
            knob.changed_at = now
            change = Change(time.time(), knob.knob, knob.target, old, new, move.reason,
                            dict(knob.readings))  # fmt: skip
            self._record(change)
            made.append(change)
        return made

    def begin(self) -> None:
        """Readings start now: what ran before (start-up, cache warm-up) is no traffic."""
        now = self._clock()
        for window in self.latencies.windows.values():
            window.close(now)
        for cache in self.caches:
            cache.close(now)
        for knob in self.knobs:
            knob.changed_at = now

    async def run(self) -> None:
        """Ticks every ``interval_s`` until cancelled; a failing tick is logged, never fatal."""
        self.begin()
        while True:
            await asyncio.sleep(self.config.interval_s)
            try:
                self.tick()
            except Exception:
                log.exception("controller: a tick failed; the knobs stay as they are")

    async def close(self) -> None:
        """Waits for the audit rows still being written."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    # ---- recording ---------------------------------------------------------------------------

    def _record(self, change: Change) -> None:
        self.changes.append(change)
        self.metrics.observe_change(change.knob, change.target, change.old, change.new)
        log.info("controller change %s", orjson.dumps(change.to_dict()).decode())
        if self.audit is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # ticked outside a loop (a test driving it): write here
                self._audit(change)
                return
            task = loop.create_task(asyncio.to_thread(self._audit, change))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    def _audit(self, change: Change) -> None:
        assert self.audit is not None
        append = functools.partial(
            self.audit.append, "controller", f"controller.{change.knob}", change.target,
            old=change.old, new=change.new, reason=change.reason, readings=change.readings,
        )  # fmt: skip
        try:
            append()
        except Exception:  # the change is made and logged; a failed audit row must not undo it
            log.exception("controller: writing the audit row of %s %s failed", change.knob,
                          change.target)  # fmt: skip

    def state(self) -> dict[str, Any]:
        """For ``GET /admin/controller``: each knob now, its bounds and last readings, and the
        recent changes, newest last."""
        return {
            "interval_s": self.config.interval_s,
            "window_s": self.config.window_s,
            "knobs": [knob.state() for knob in self.knobs],
            "changes": [change.to_dict() for change in self.changes],
        }


def controlled_latencies(config: FrugalConfig) -> BatchLatencies | None:
    """The latency windows of the models the controller turns; None when there is no
    controller (the batchers then report to the recorder alone)."""
    controller = config.controller
    if controller is None or not controller.enabled:
        return None
    return BatchLatencies([_model_key(config, b.model) for b in controller.batching],
                          controller.window_s)  # fmt: skip


def build_controller(
    config: FrugalConfig,
    batchers: Mapping[str, Batcher],
    latencies: BatchLatencies,
    registry: CollectorRegistry,
    *,
    caches: Mapping[str, CacheStage],
    routers: Mapping[str, RuleRouter],
) -> Controller:
    """The controller of ``config`` over the engine's parts (serving/assembly.py)."""
    assert config.controller is not None
    return Controller.build(
        config.controller, batchers=batchers, caches=caches, routers=routers,
        resolve=functools.partial(_model_key, config), latencies=latencies,
        metrics=ControllerMetrics(registry),
        audit=AuditLog.from_config(config.ledger) if config.ledger.enabled else None,
    )  # fmt: skip


def _model_key(config: FrugalConfig, ref: str) -> str:
    found = config.find_model(ref)
    assert found is not None  # config validation checked every reference
    return found.key


__all__ = ["Change", "Controller", "build_controller", "controlled_latencies"]
