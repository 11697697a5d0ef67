"""What the ledger's writer wrote, rejected and lost, and whether its writes keep failing.

The writer thread reports every commit here; readiness (``healthy``) and ``/metrics`` read it
from the event loop. A row is *rejected* when it alone cannot be stored (a value SQLite cannot
hold, such as a token count of 2**63): the writer skips it and goes on. Rows are *lost* when the
file takes no writes (a full disk, a deleted or replaced file) for longer than the writer can
hold them. Both are counted and logged with their true numbers: a ledger never fails silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("frugal.ledger")

TABLES = ("requests", "batches", "payloads")  # the tables of rows; runs rows are stamps
# Unhealthy (readiness off) after this many failed commits in a row, or once commits have kept
# failing this long, whichever comes first: one failed commit (a lock held past its timeout by
# another process) is not yet an outage, but a full disk must not stay "ready" for long.
UNHEALTHY_AFTER_FAILURES = 3
UNHEALTHY_AFTER_S = 2.0
LOG_EVERY_S = 10.0  # repeated failures and rejections: a few lines per this, with the counts
REJECTIONS_LOGGED_PER_WINDOW = 5


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """A snapshot for ``/metrics``: counts per table since the ledger opened."""

    healthy: bool
    written: Mapping[str, int]
    rejected: Mapping[str, int]
    lost: Mapping[str, int]
    held: int  # rows waiting for the file to take writes again
    failing_s: float  # how long commits have kept failing; 0 while they succeed


@dataclass(frozen=True, slots=True)
class Rejection:
    """One row the writer skipped: which table, which row (a request id), and why."""

    table: str
    row: str
    reason: str


class _Throttle:
    """At most ``burst`` log lines per ``every_s``; says how many it held back since."""

    def __init__(self, every_s: float, burst: int, clock: Callable[[], float]) -> None:
        self.every_s, self.burst, self._clock = every_s, burst, clock
        self._window_start = -every_s
        self._lines = 0
        self._held_back = 0

    def allow(self) -> int | None:
        """None: stay silent; else log now, mentioning the returned count held back before."""
        now = self._clock()
        if now - self._window_start >= self.every_s:
            self._window_start, self._lines = now, 0
        if self._lines < self.burst:
            self._lines += 1
            held_back, self._held_back = self._held_back, 0
            return held_back
        self._held_back += 1
        return None


class LedgerHealth:
    """Counts and failure state, written by the writer thread and read from any thread."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._written = dict.fromkeys(TABLES, 0)
        self._rejected = dict.fromkeys(TABLES, 0)
        self._lost = dict.fromkeys(TABLES, 0)
        self._held = 0
        self._failures = 0  # consecutive failed commits
        self._failing_since: float | None = None
        self._failure_log = _Throttle(LOG_EVERY_S, 1, clock)
        self._rejection_log = _Throttle(LOG_EVERY_S, REJECTIONS_LOGGED_PER_WINDOW, clock)

    @property
    def healthy(self) -> bool:
        """False while commits keep failing (see UNHEALTHY_AFTER_*); True again after one
        succeeds."""
        with self._lock:
            return self._healthy()

    def _healthy(self) -> bool:
        if self._failing_since is None:
            return True
        failing_s = self._clock() - self._failing_since
        return self._failures < UNHEALTHY_AFTER_FAILURES and failing_s < UNHEALTHY_AFTER_S

    def stats(self) -> LedgerStats:
        with self._lock:
            since = self._failing_since
            return LedgerStats(
                healthy=self._healthy(),
                written=dict(self._written),
                rejected=dict(self._rejected),
                lost=dict(self._lost),
                held=self._held,
                failing_s=0.0 if since is None else self._clock() - since,
            )

    # ---- reported by the writer thread --------------------------------------------------------

    def wrote(self, rows: Mapping[str, int], rejections: list[Rejection]) -> None:
        """A commit succeeded: ``rows`` per table went in, ``rejections`` were skipped."""
        with self._lock:
            for table, count in rows.items():
                self._written[table] = self._written.get(table, 0) + count
            for rejection in rejections:
                self._rejected[rejection.table] = self._rejected.get(rejection.table, 0) + 1
            recovered_after = self._failures
            failing_s = 0.0 if self._failing_since is None else self._clock() - self._failing_since
            self._failures, self._failing_since, self._held = 0, None, 0
            lost = sum(self._lost.values())
            rejected = sum(self._rejected.values())
        if recovered_after:
            log.warning(
                "ledger %s: writing again after %d failed commit(s) over %.1f s; %d row(s) lost "
                "in all since start", self.path, recovered_after, failing_s, lost,
            )  # fmt: skip
        for rejection in rejections:
            held_back = self._rejection_log.allow()
            if held_back is None:
                continue
            more = f" ({held_back} more rejection(s) not logged)" if held_back else ""
            log.error(
                "ledger %s: rejected a %s row (%s): %s; %d row(s) rejected since start%s",
                self.path, rejection.table, rejection.row, rejection.reason, rejected, more,
            )  # fmt: skip

    def failed(self, reason: str, *, rows: int, held: int, lost: Mapping[str, int]) -> None:
        """A commit of ``rows`` failed as a whole: ``held`` rows wait for the next try, ``lost``
        (per table) were given up (more than the writer holds, or payloads, which it never
        holds)."""
        with self._lock:
            self._failures += 1
            if self._failing_since is None:
                self._failing_since = self._clock()
            for table, count in lost.items():
                self._lost[table] = self._lost.get(table, 0) + count
            self._held = held
            failures = self._failures
            healthy = self._healthy()
            lost_in_all = sum(self._lost.values())
            failing_s = self._clock() - self._failing_since
        held_back = self._failure_log.allow()
        if failures > 1 and held_back is None:
            return
        state = "" if healthy else "; readiness is off until a write succeeds"
        log.error(
            "ledger %s: cannot write %d row(s) (failing for %.1f s, %d commit(s) in a row): %s; "
            "%d row(s) held to retry, %d lost now, %d lost since start%s",
            self.path, rows, failing_s, failures, reason, held, sum(lost.values()),
            lost_in_all, state,
        )  # fmt: skip

    def gave_up(self, reason: str, lost: Mapping[str, int]) -> None:
        """Rows given up without a commit failing now (the writer stopping while it held rows,
        or a bug in the writer): counted and logged, always."""
        count = sum(lost.values())
        with self._lock:
            for table, n in lost.items():
                self._lost[table] = self._lost.get(table, 0) + n
            self._held = 0
            lost_in_all = sum(self._lost.values())
        if count:
            log.error("ledger %s: %d row(s) lost: %s; %d lost since start",
                      self.path, count, reason, lost_in_all)  # fmt: skip

    def broke(self) -> None:
        """A bug in the writer: unhealthy at once, until a commit succeeds."""
        with self._lock:
            self._failures = max(self._failures + 1, UNHEALTHY_AFTER_FAILURES)
            if self._failing_since is None:
                self._failing_since = self._clock()


__all__ = ["TABLES", "LedgerHealth", "LedgerStats", "Rejection"]
