"""What the machine cost over a window: each run billed from its start to its end.

A run is one server process's row in the ledger's ``runs`` table. It is billed its price over
``[started, end]``, where ``started`` is before its models loaded and ``end`` is:

- ``stopped``, written by a clean shutdown;
- else its last ``heartbeat``: the writer thread stamps it every ``ledger.heartbeat_s`` and with
  every commit, so a killed run is billed to the last moment it was known to be alive, at most
  one heartbeat (plus one flush interval) short and never past it. Whether the run's pid is
  alive says nothing: pids are reused, and a live run's heartbeat is recent anyway;
- else (a ledger from before heartbeats) its last request, or its start.

``[started, ready]`` is its start-up (loading models, warming up): billed, and shown apart. A
run that never became ready was start-up all its life.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugal.accounting.ledger_schema import SqlReader


@dataclass(frozen=True, slots=True)
class WindowBill:
    """The runs' cost within a window, in dollars."""

    billed_usd: float  # price x each run's wall time in the window, start-up included
    startup_usd: float  # the part of billed before each run was ready
    busy_usd: float  # the batches' busy slot-seconds in the window, priced per run


def run_end(
    started: float, stopped: float | None, heartbeat: float | None, last_request: float | None
) -> float:
    """When a run ended as far as the ledger knows (see the module docstring)."""
    if stopped is not None:
        return stopped
    if heartbeat is not None:
        return max(started, heartbeat)
    return max(started, last_request or started)


def overlap_s(start: float, end: float, since: float, until: float) -> float:
    """Seconds of ``[start, end]`` inside ``[since, until]``."""
    return max(0.0, min(end, until) - max(start, since))


def bill_window(db: SqlReader, since: float, until: float) -> WindowBill:
    """Bill every run of the ledger over ``[since, until]``; batches count where they start."""
    runs = db.execute(
        "SELECT run_id, started, stopped, heartbeat, ready, price_usd_per_hour, slots FROM runs"
    ).fetchall()
    billed = startup = busy = 0.0
    for run_id, started, stopped, heartbeat, ready, price, slots in runs:
        last_request = None
        if stopped is None and heartbeat is None:  # an older ledger: the only evidence left
            (last_request,) = db.execute(
                "SELECT MAX(ts) FROM requests WHERE run_id = ?", (run_id,)
            ).fetchone()
        end = run_end(started, stopped, heartbeat, last_request)
        ready_at = end if ready is None else min(max(ready, started), end)
        usd_per_s = price / 3600
        billed += usd_per_s * overlap_s(started, end, since, until)
        startup += usd_per_s * overlap_s(started, ready_at, since, until)
        (busy_s,) = db.execute(
            "SELECT COALESCE(SUM(busy_s), 0) FROM batches WHERE run_id = ? AND ts >= ? AND ts <= ?",
            (run_id, since, until),
        ).fetchone()
        busy += usd_per_s * busy_s / slots
    return WindowBill(billed_usd=billed, startup_usd=startup, busy_usd=busy)


__all__ = ["WindowBill", "bill_window", "overlap_s", "run_end"]
