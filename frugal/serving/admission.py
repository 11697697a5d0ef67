"""Admission: who is calling, may they, and have they the rate and budget left.

Runs before the body is read, so a refused request costs a header parse and nothing else: it
reaches no model, writes no ledger row and is charged nothing (only a refusal counter moves).

Roles (docs/security.md):
- ``user``: calls the endpoints its key allows (all when the key names none), reads metadata;
- ``viewer``: reads metadata and ``/metrics``;
- ``admin``: everything, including ``/admin/...``.
Without an ``auth`` section every caller is anonymous and allowed, except ``/admin/...``, which
then answers loopback clients only (and the server itself binds only to loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from frugal.access import ApiKey, KeyRing, KeyStore, KeyWatcher, RateLimiter
from frugal.accounting.budgets import BudgetBook
from frugal.errors import (
    BudgetExceeded,
    Forbidden,
    FrugalError,
    InvalidInput,
    RateLimited,
    Unauthorized,
)
from frugal.observability import BudgetState, ServingMetrics

log = logging.getLogger("frugal.admission")

Action = Literal["call", "read", "metrics", "admin"]
ALLOWED: dict[str, frozenset[Action]] = {
    "user": frozenset({"call", "read"}),
    "viewer": frozenset({"read", "metrics"}),
    "admin": frozenset({"call", "read", "metrics", "admin"}),
}
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
BUDGET_REFRESH_S = 2.0


@dataclass(frozen=True, slots=True)
class Caller:
    """The admitted caller; ``key`` is None when auth is off."""

    key: ApiKey | None = None
    given_tier: str | None = None  # x-frugal-tier, counted only without auth (no elevation)

    @property
    def name(self) -> str:
        return self.key.name if self.key is not None else ""

    @property
    def tier(self) -> str | None:
        return self.key.tier if self.key is not None else self.given_tier

    def with_tier_header(self, header: str | None) -> Caller:
        """Without auth, the tier a request names in ``x-frugal-tier`` (cut to 64 characters:
        it reaches the ledger); a key's own tier is never overridden."""
        if self.key is not None or not header:
            return self
        return Caller(None, header[:64])

    def user_scope(self, header: str | None) -> str | None:
        """The cache's "user": the key, refined by ``x-frugal-user`` (never another key's)."""
        if self.key is None:
            return header
        return f"{self.key.name}/{header}" if header else self.key.name


ANONYMOUS = Caller()
# frugal_refused_total's reason label for each refusal admission raises.
REFUSAL_REASONS: dict[type[FrugalError], str] = {
    Unauthorized: "unauthorized",
    Forbidden: "forbidden",
    RateLimited: "rate_limited",
    BudgetExceeded: "budget",
}


class Admission:
    def __init__(
        self,
        store: KeyStore | None,
        *,
        metrics: ServingMetrics,
        budgets: BudgetBook | None = None,
        limiter: RateLimiter | None = None,
        reload_interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.budgets = budgets
        self.limiter = limiter or RateLimiter()
        self.reload_interval_s = reload_interval_s
        self.ring = KeyRing()
        self._watcher: KeyWatcher | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.store is not None

    async def start(self) -> None:
        if self.store is None:
            return
        self._watcher = await asyncio.to_thread(KeyWatcher, self.store)
        await self.reload()
        if self.budgets is not None:
            await asyncio.to_thread(self.budgets.refresh)
        self._task = asyncio.create_task(self._watch(), name="frugal-keys")
        log.info("auth: on, %d active key(s) in %s", self.ring.count, self.store.path)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._watcher is not None:
            self._watcher.close()

    async def reload(self) -> None:
        """Read the keys again now (after an admin change; the watcher does it for others)."""
        assert self.store is not None
        self.ring = await asyncio.to_thread(self.store.ring)

    async def _watch(self) -> None:
        assert self._watcher is not None
        since_budget = 0.0
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                if await asyncio.to_thread(self._watcher.changed):
                    self.ring = await asyncio.to_thread(self.store.ring)  # type: ignore[union-attr]
                since_budget += self.reload_interval_s
                if self.budgets is not None and since_budget >= BUDGET_REFRESH_S:
                    since_budget = 0.0
                    await asyncio.to_thread(self.budgets.refresh)
            except Exception:  # a locked or broken keys file must not stop serving
                log.exception("auth: reloading keys failed; keeping the keys loaded before")

    def authorization_of(self, values: Sequence[str]) -> str | None:
        """The request's one ``Authorization`` value (None without one); several are refused."""
        if len(values) > 1:
            raise self.duplicate_authorization()
        return values[0] if values else None

    def duplicate_authorization(self) -> InvalidInput:
        """The refusal of a request with more than one ``Authorization`` header: the inference
        path kept the last, Starlette's routes the first, a proxy may check a third; whichever
        one frugal read, another part of the stack could have read another key."""
        self.metrics.observe_refusal("duplicate_authorization")
        return InvalidInput(
            "more than one Authorization header; send exactly one",
            field="authorization",
            hint="send one `Authorization: Bearer <key>` header",
        )

    def admit(
        self,
        authorization: str | None,
        action: Action,
        *,
        endpoint: str | None = None,
        client: str | None = None,
    ) -> Caller:
        """The caller, or Unauthorized / Forbidden / RateLimited / BudgetExceeded."""
        if self.store is None and action != "admin":  # auth off: every caller may, at once
            return ANONYMOUS
        try:
            return self._admit(authorization, action, endpoint, client)
        except tuple(REFUSAL_REASONS) as refusal:
            reason = next(r for kind, r in REFUSAL_REASONS.items() if isinstance(refusal, kind))
            self.metrics.observe_refusal(reason)
            raise

    def _admit(
        self, authorization: str | None, action: Action, endpoint: str | None, client: str | None
    ) -> Caller:
        if self.store is None:
            if action == "admin" and client not in LOOPBACK:
                raise Forbidden(
                    "admin routes answer loopback clients only while auth is off",
                    hint="add an `auth` section and use an admin key (docs/security.md)",
                )
            return ANONYMOUS
        key = self._authenticate(authorization)
        if action not in ALLOWED[key.role]:
            raise Forbidden(f"role {key.role} may not {_VERBS[action]} (key {key.name!r})")
        if action == "call" and endpoint is not None:
            _check_endpoint(key, endpoint)
        if key.rps is not None:
            wait_s = self.limiter.take(key.name, key.rps)
            if wait_s > 0:
                raise RateLimited(
                    f"key {key.name!r} is over its rate of {key.rps:g} requests/s",
                    retry_after_s=wait_s,
                    hint="retry after Retry-After seconds",
                )
        if action == "call" and self.budgets is not None:
            self._check_budget(key)
        return Caller(key)

    def _authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization:
            raise Unauthorized("an API key is required", hint="send `Authorization: Bearer <key>`")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized(
                "the Authorization header must be `Bearer <key>`",
                hint="send `Authorization: Bearer <key>`",
            )
        key = self.ring.authenticate(secret.strip())
        if key is None:  # unknown, rotated away or revoked: the same answer for all three
            raise Unauthorized("the API key is not valid (unknown, rotated or revoked)")
        return key

    def budget_states(self) -> list[BudgetState]:
        """Each active key's daily budgets and today's spend, for /metrics (read when scraped)."""
        if self.budgets is None:
            return []
        states = []
        for key in self.ring.active:
            if key.budget_usd_day is None and key.tokens_day is None:
                continue
            spent = self.budgets.spent(key.name)
            if key.budget_usd_day is not None:
                states.append(BudgetState(key.name, "usd_day", key.budget_usd_day, spent.usd))
            if key.tokens_day is not None:
                states.append(BudgetState(key.name, "tokens_day", key.tokens_day, spent.tokens))
        return states

    def _check_budget(self, key: ApiKey) -> None:
        assert self.budgets is not None
        if key.budget_usd_day is None and key.tokens_day is None:
            return
        spent = self.budgets.spent(key.name)
        resets = self.budgets.resets_at()
        if key.budget_usd_day is not None and spent.usd >= key.budget_usd_day:
            raise BudgetExceeded(
                f"key {key.name!r} has spent its ${key.budget_usd_day:g} for today",
                budget="usd_day", limit=key.budget_usd_day, spent=spent.usd, resets_at=resets,
                hint="the budget resets at 00:00 UTC; an admin can raise it",
            )  # fmt: skip
        if key.tokens_day is not None and spent.tokens >= key.tokens_day:
            raise BudgetExceeded(
                f"key {key.name!r} has used its {key.tokens_day:g} tokens for today",
                budget="tokens_day", limit=key.tokens_day, spent=spent.tokens, resets_at=resets,
                hint="the budget resets at 00:00 UTC; an admin can raise it",
            )  # fmt: skip

    def check_endpoint(self, caller: Caller, endpoint: str) -> None:
        """Forbidden unless the key may call ``endpoint``: for routes whose body names it."""
        if caller.key is None:
            return
        try:
            _check_endpoint(caller.key, endpoint)
        except Forbidden:
            self.metrics.observe_refusal("forbidden")
            raise


def _check_endpoint(key: ApiKey, endpoint: str) -> None:
    if key.role != "admin" and key.endpoints is not None and endpoint not in key.endpoints:
        allowed = ", ".join(key.endpoints) or "nothing"
        raise Forbidden(
            f"key {key.name!r} may not call {endpoint!r}", hint=f"it may call: {allowed}"
        )


_VERBS: dict[Action, str] = {
    "call": "call endpoints",
    "read": "read model metadata",
    "metrics": "read metrics",
    "admin": "use admin routes",
}


__all__ = ["ALLOWED", "ANONYMOUS", "Action", "Admission", "Caller"]
