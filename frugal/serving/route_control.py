"""Run-time control of splits: admin changes, automatic rollback, and agreement across workers.

Every change (``POST /admin/endpoints/{name}/route``, or a canary rolled back by its watch) is
applied here at once, stored in the ledger file's ``route_weights`` table so other worker
processes and a restart pick it up (frugal/routing/weights_store.py), and written to the audit
log with who made it, before and after. Without a ledger the changes live in this process only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from frugal.access import AuditLog
from frugal.config import LedgerConfig, RouteConfig
from frugal.errors import InvalidInput, NotFound
from frugal.observability import ServingMetrics
from frugal.routing.rollback import CanaryWatch, Verdict
from frugal.routing.split import SplitObserver, SplitRouter
from frugal.routing.weights_store import WeightStore

log = logging.getLogger("frugal.routes")
POLL_INTERVAL_S = 1.0


@dataclass(slots=True)
class _Split:
    router: SplitRouter
    configured: dict[str, float]  # the config's weights
    watch: CanaryWatch | None


class RouteControl:
    def __init__(self, metrics: ServingMetrics, ledger: LedgerConfig | None) -> None:
        self.metrics = metrics
        self.splits: dict[str, _Split] = {}
        self.store = WeightStore(ledger.path) if ledger is not None else None
        self.audit = AuditLog.from_config(ledger) if ledger is not None else None
        self._seen = 0  # the last stored change applied
        self._tasks: set[asyncio.Task[None]] = set()
        metrics.routes.watch_splits(metrics.registry, self._weights)

    def add_split(self, endpoint: str, route: RouteConfig, keys: list[str]) -> SplitRouter:
        """The endpoint's split router, watched for rollback when the route asks for it."""
        assert route.split is not None
        configured = {key: w.weight for key, w in zip(keys, route.split, strict=True)}
        watch = CanaryWatch(route.rollback) if route.rollback is not None else None
        router = SplitRouter(configured, sticky=route.sticky, observe=self._observer(endpoint))
        self.splits[endpoint] = _Split(router, configured, watch)
        return router

    def _weights(self) -> list[tuple[str, str, float]]:
        return [(e, v, w) for e, s in self.splits.items() for v, w in s.router.weights.items()]

    def _observer(self, endpoint: str) -> SplitObserver:
        def observe(version: str, failed: bool, latency_s: float) -> None:
            split = self.splits[endpoint]
            if split.watch is None:
                return
            split.watch.observe(version, failed, latency_s)
            for verdict in split.watch.judge(split.router.weights):
                self._roll_back(endpoint, split, verdict)

        return observe

    def _roll_back(self, endpoint: str, split: _Split, verdict: Verdict) -> None:
        before = split.router.weights
        after = before | {verdict.canary: 0.0}
        split.router.set_weights(after)
        assert split.watch is not None
        split.watch.forget(verdict.canary)
        self.metrics.routes.observe_rollback(endpoint, verdict.canary)
        log.warning("endpoint %s: rolled back %s: %s", endpoint, verdict.canary, verdict.reason)
        detail = {
            "reason": verdict.reason,
            "canary": verdict.canary_stats.to_dict(),
            "baseline": verdict.baseline_stats.to_dict(),
            "baseline_model": verdict.baseline,
        }
        action = "route.auto_rollback"
        self._spawn(self._persist(endpoint, split, "rollback", action, before, after, detail))

    # ---- the admin API ---------------------------------------------------------------------

    def state(self, endpoint: str) -> dict[str, Any]:
        split = self._split(endpoint)
        return {"endpoint": endpoint, "weights": split.router.weights,
                "configured": split.configured, "baseline": split.router.baseline,
                "sticky": split.router.sticky}  # fmt: skip

    async def change(self, endpoint: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
        """``{"weights": {...}}``, ``{"promote": version}`` or ``{"rollback": true}``."""
        split = self._split(endpoint)
        given = [k for k in ("weights", "promote", "rollback") if k in body]
        if len(given) != 1:
            raise InvalidInput("give exactly one of `weights`, `promote` or `rollback`",
                               field="body")  # fmt: skip
        action = given[0]
        router = split.router
        before = router.weights
        if action == "weights":
            weights = body["weights"]
            if not isinstance(weights, dict) or not all(
                isinstance(w, int | float) and not isinstance(w, bool) for w in weights.values()
            ):
                raise InvalidInput("an object of version -> number", field="weights")
            after = {self._version(split, v, "weights"): float(w) for v, w in weights.items()}
        elif action == "promote":
            version = self._version(split, body["promote"], "promote")
            after = {v: (100.0 if v == version else 0.0) for v in router.models}
        else:
            if body["rollback"] is not True:
                raise InvalidInput("must be true", field="rollback")
            # Back to the config's main version (blue-green: undo a promote; canary: cut it).
            main = max(router.models, key=lambda v: split.configured[v])
            after = {v: (split.configured[v] if v == main else 0.0) for v in router.models}
        try:
            router.set_weights(after)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=action) from None
        if split.watch is not None:  # judged again from fresh windows under the new weights
            for version in router.models:
                split.watch.forget(version)
        await self._persist(endpoint, split, actor, f"route.{action}", before, router.weights, {})
        return {"endpoint": endpoint, "before": before, "after": router.weights}

    def _split(self, endpoint: str) -> _Split:
        split = self.splits.get(endpoint)
        if split is None:
            served = ", ".join(sorted(self.splits)) or "none"
            raise NotFound(f"endpoint {endpoint!r} has no split route; splits: {served}")
        return split

    @staticmethod
    def _version(split: _Split, given: Any, field: str) -> str:
        """``name:version`` as served; a bare ``name`` only when it is unambiguous."""
        versions = split.router.models
        if isinstance(given, str):
            if given in versions:
                return given
            matches = [v for v in versions if v.partition(":")[0] == given]
            if len(matches) == 1:
                return matches[0]
        raise InvalidInput(f"not a version of this split; versions: {', '.join(versions)}",
                           field=field)  # fmt: skip

    # ---- storage, audit, and the other workers ----------------------------------------------

    async def _persist(
        self, endpoint: str, split: _Split, actor: str, action: str,
        before: dict[str, float], after: dict[str, float], detail: dict[str, Any],
    ) -> None:  # fmt: skip
        if self.store is not None:
            seq = await asyncio.to_thread(self.store.save, endpoint, after, split.configured, actor)
            if seq == self._seen + 1:  # nothing else changed in between: no need to read it
                self._seen = seq
        if self.audit is not None:
            append = functools.partial(self.audit.append, actor, action, endpoint,
                                       before=before, after=after, **detail)  # fmt: skip
            await asyncio.to_thread(append)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def load(self) -> None:
        """Apply stored changes made since the last look (start-up, then every second)."""
        if self.store is None or not self.splits:
            return
        for row in await asyncio.to_thread(self.store.since, self._seen):
            self._seen = max(self._seen, row.seq)
            split = self.splits.get(row.endpoint)
            if split is None or row.configured != split.configured:
                continue  # the config changed since: it wins
            if row.weights != split.router.weights:
                try:
                    split.router.set_weights(row.weights)
                except ValueError:
                    log.warning("endpoint %s: stored weights do not fit the split; ignored",
                                row.endpoint)  # fmt: skip
                    continue
                log.info("endpoint %s: split weights now %s", row.endpoint, row.weights)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            try:
                await self.load()
            except Exception:
                log.exception("reading stored split weights failed; will retry")

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)


__all__ = ["RouteControl"]
