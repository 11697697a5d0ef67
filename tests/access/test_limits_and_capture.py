"""Token buckets, daily budgets from the ledger, redaction and retention, without a server."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from frugal.access import Capture, RateLimiter, Redactor, TokenBucket
from frugal.access.capture import REDACTED
from frugal.accounting import LedgerRow, SqliteLedger
from frugal.accounting.budgets import BudgetBook, day_start
from frugal.accounting.ledger import PayloadRow
from frugal.accounting.retention import prune
from frugal.config import CaptureConfig
from frugal.errors import ConfigError


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_its_rate_and_says_when_to_retry() -> None:
    bucket = TokenBucket(rate=4.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [0.0] * 4  # a full second's burst
    assert bucket.take(0.0) == pytest.approx(0.25)  # one token frees every 1/4 s
    assert bucket.take(0.25) == 0.0
    assert bucket.take(0.25) > 0


def test_slow_rates_still_allow_one_request() -> None:
    bucket = TokenBucket(rate=0.5, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(2.0)


def test_limiter_splits_the_rate_across_processes() -> None:
    clock = Clock(0.0)
    limiter = RateLimiter(processes=2, clock=clock)
    taken = sum(limiter.take("team-a", 10.0) == 0.0 for _ in range(20))
    assert taken == 5  # 10 rps over 2 processes: 5 per process per second
    assert limiter.take("team-b", 10.0) == 0.0  # buckets are per key


def ledger_row(key: str, cost: float, tokens: int, ts: float) -> LedgerRow:
    return LedgerRow(ts=ts, request_id="r", endpoint="e", model="m", version="1", items=1,
                     batch_size=1, queue_ms=0, compute_ms=0, latency_ms=0, cost_usd=cost,
                     status=200, key=key, tokens=tokens)  # fmt: skip


def test_budget_book_reads_other_runs_and_counts_its_own(tmp_path: Path) -> None:
    """Spending survives a restart: today's rows of an earlier run are read back."""
    path = tmp_path / "ledger.db"
    now = time.time()
    earlier = SqliteLedger(path)
    earlier.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    earlier.record(ledger_row("team-a", 0.25, 100, now))
    earlier.record(ledger_row("team-a", 0.5, 0, day_start(now) - 10))  # yesterday
    earlier.record(ledger_row("team-b", 1.0, 5, now))
    earlier.close()

    book = BudgetBook(path, run_id="this-run")
    book.refresh()
    assert book.spent("team-a").usd == pytest.approx(0.25) and book.spent("team-a").tokens == 100
    book.add("team-a", 0.1, 7)
    assert book.spent("team-a").usd == pytest.approx(0.35) and book.spent("team-a").tokens == 107
    assert book.spent("nobody").usd == 0.0
    assert book.resets_at() == day_start(now) + 86400


def test_budgets_start_again_at_utc_midnight(tmp_path: Path) -> None:
    clock = Clock(day_start(time.time()) + 86400 - 1)
    book = BudgetBook(tmp_path / "absent.db", run_id="r", clock=clock)
    book.add("team-a", 1.0, 10)
    assert book.spent("team-a").usd == 1.0
    clock.now += 2
    assert book.spent("team-a").usd == 0.0 and book.spent("team-a").tokens == 0


def test_redactor_replaces_named_fields_at_any_depth_and_patterns() -> None:
    redact = Redactor(["email", "ssn"], [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"])
    given = {"instances": [{"text": "card 1234-5678-9012-3456 ok", "email": "a@b.c",
                            "nested": {"ssn": "123", "keep": 1}}]}  # fmt: skip
    assert redact(given) == {"instances": [{"text": f"card {REDACTED} ok", "email": REDACTED,
                                            "nested": {"ssn": REDACTED, "keep": 1}}]}  # fmt: skip


def test_capture_samples_and_encodes_redacted_json() -> None:
    import random

    capture = Capture(CaptureConfig(sample=0.25, redact_fields=["name"]), rng=random.Random(1))
    wanted = sum(capture.wanted() for _ in range(4000))
    assert 800 < wanted < 1200
    assert capture.encode({"name": "Ada", "x": [1, 2]}) == '{"name":"[redacted]","x":[1,2]}'


def test_prune_by_age_and_by_key(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    now = time.time()
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    for key, age_days in (("team-a", 40), ("team-a", 1), ("team-b", 40), ("team-b", 1)):
        ts = now - age_days * 86400
        ledger.record(ledger_row(key, 0.01, 0, ts))
        ledger.record_payload(PayloadRow(ts, "r", "e", key, "{}", "{}", expires=ts + 7 * 86400))
    ledger.close()

    old = prune(path, older_than_s=30 * 86400, now=now)
    assert (old.requests, old.payloads) == (2, 2)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key_name FROM requests ORDER BY key_name").fetchall() == [
            ("team-a",),
            ("team-b",),
        ]
    by_key = prune(path, key="team-a", now=now)
    assert (by_key.requests, by_key.payloads) == (1, 1)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key_name FROM requests").fetchall() == [("team-b",)]
        assert db.execute("SELECT key_name FROM payloads").fetchall() == [("team-b",)]


def test_prune_drops_expired_payloads_and_refuses_a_missing_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    now = time.time()
    ledger = SqliteLedger(path)
    ledger.open(instance="custom", price_usd_per_hour=1.0, slots=1)
    ledger.record_payload(PayloadRow(now, "r1", "e", "", "{}", "{}", expires=now - 1))
    ledger.record_payload(PayloadRow(now, "r2", "e", "", "{}", "{}", expires=now + 60))
    ledger.close()
    assert prune(path, now=now).payloads == 1
    with pytest.raises(ConfigError, match="no ledger here yet"):
        prune(tmp_path / "absent.db")
