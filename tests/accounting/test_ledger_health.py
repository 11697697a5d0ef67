"""LedgerHealth: when a failing ledger turns readiness off and back on, and what it logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from frugal.accounting.ledger_health import (
    LOG_EVERY_S,
    REJECTIONS_LOGGED_PER_WINDOW,
    UNHEALTHY_AFTER_FAILURES,
    UNHEALTHY_AFTER_S,
    LedgerHealth,
    Rejection,
)


class Clock:
    """A monotonic clock the test moves by hand (LedgerHealth takes its clock as an argument)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> LedgerHealth:
    return LedgerHealth(Path("ledger.db"), clock=clock)


def fail(health: LedgerHealth, rows: int = 1, *, lost: int = 0) -> None:
    health.failed("database or disk is full (SQLITE_FULL)", rows=rows, held=rows - lost,
                  lost={"requests": lost} if lost else {})  # fmt: skip


def test_failed_commits_in_a_row_turn_it_unhealthy_and_one_success_back(
    health: LedgerHealth,
) -> None:
    """Healthy through the first failures; unhealthy at UNHEALTHY_AFTER_FAILURES; a commit
    that succeeds makes it healthy and clears the held count."""
    for _ in range(UNHEALTHY_AFTER_FAILURES - 1):
        fail(health, 4)
        assert health.healthy
    fail(health, 4)
    assert not health.healthy
    assert health.stats().held == 4
    health.wrote({"requests": 4}, [])
    assert health.healthy
    assert (health.stats().held, health.stats().written["requests"]) == (0, 4)


def test_one_failure_that_lasts_turns_it_unhealthy(health: LedgerHealth, clock: Clock) -> None:
    """A single failed commit, not yet followed by a success, counts once it is old enough."""
    fail(health)
    clock.now += UNHEALTHY_AFTER_S - 0.01
    assert health.healthy
    clock.now += 0.02
    assert not health.healthy
    assert health.stats().failing_s == pytest.approx(UNHEALTHY_AFTER_S + 0.01)


def test_a_bug_turns_it_unhealthy_at_once(health: LedgerHealth) -> None:
    health.broke()
    assert not health.healthy
    health.wrote({}, [])
    assert health.healthy


def test_losses_add_up_across_failures_and_are_logged_with_true_counts(
    health: LedgerHealth, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure logs at once, later ones once per LOG_EVERY_S; every line has the
    rows of that commit and the running total lost."""
    caplog.set_level(logging.ERROR, logger="frugal.ledger")
    fail(health, 8884, lost=884)
    fail(health, 9000, lost=1000)  # within the window: counted, not logged
    clock.now += LOG_EVERY_S
    fail(health, 9000, lost=1000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert (
        "cannot write 8884 row(s)" in lines[0] and "884 lost now, 884 lost since start" in lines[0]
    )
    assert "1000 lost now, 2884 lost since start" in lines[1]
    assert "readiness is off" in lines[1]
    assert health.stats().lost["requests"] == 2884


def test_rejections_are_logged_a_few_per_window_and_the_rest_are_counted(
    health: LedgerHealth, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="frugal.ledger")
    bad = [Rejection("requests", f"request_id 'r{i}'", "too large") for i in range(8)]
    health.wrote({"requests": 2}, bad)
    assert health.stats().rejected["requests"] == 8
    assert health.healthy  # a bad row is not a failing ledger
    assert len(caplog.records) == REJECTIONS_LOGGED_PER_WINDOW
    clock.now += LOG_EVERY_S
    health.wrote({}, [Rejection("batches", "model digits:1, ts 1.0", "NOT NULL")])
    last = caplog.records[-1].getMessage()
    assert "rejected a batches row" in last
    assert f"({8 - REJECTIONS_LOGGED_PER_WINDOW} more rejection(s) not logged)" in last
