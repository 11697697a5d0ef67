"""The dashboard's stats document against a real server and its ledger; windows; access."""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from frugal.access import KeyStore
from frugal.config import parse_config
from frugal.errors import InvalidInput
from frugal.observability import WINDOWS, LedgerSource, ledger_document, parse_window
from tests.conftest import ServerProcess, digits_config, write_config
from tests.observability.dashboard_traffic import (
    cached_digits_config,
    ledger_truth,
    send_traffic,
)


def stats(url: str, window: str = "1h", by: str = "endpoint", **headers: str) -> httpx.Response:
    return httpx.get(f"{url}/dashboard/stats", params={"window": window, "by": by},
                     headers=headers, timeout=30)  # fmt: skip


def test_the_stats_document_holds_the_ledgers_numbers(
    serve: Any, digits_model_file: Path, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    """Requests, dollars (model and overhead apart), hit ratio and statuses equal the ledger's."""
    config = cached_digits_config(digits_config(digits_model_file, tmp_path))
    first = serve(parse_config(config))
    answered = send_traffic(first.url, digits, requests=60, distinct=20)
    live = stats(first.url).json()["live"]
    assert live["queue_depth"] == {"digits:1": 0}
    assert live["cache"]["digits"]["hits"] == 40
    # Stopped, the run's rows are final (each has its share of the server's work, added when
    # its cost interval closed); a second run on the same ledger reads them back.
    first.__exit__()
    truth = ledger_truth(tmp_path / "ledger.db")
    server = serve(parse_config(config))
    r = stats(server.url)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    totals = doc["totals"]
    assert totals["requests"] == truth.requests == answered
    assert math.isclose(totals["cost_usd"], truth.cost_usd, rel_tol=1e-9)
    assert math.isclose(totals["model_usd"], truth.model_usd, rel_tol=1e-9)
    assert math.isclose(totals["overhead_usd"], truth.overhead_usd, rel_tol=1e-9, abs_tol=1e-15)
    assert totals["cache_hit_ratio"] == truth.hit_ratio == 40 / answered
    assert doc["status"] == {str(s): n for s, n in sorted(truth.statuses.items())}
    assert totals["error_rate"] == 1 / answered
    # The bill splits into parts that add up to it; idle has its own line.
    assert math.isclose(
        totals["billed_usd"],
        totals["startup_usd"] + totals["model_usd"] + totals["overhead_usd"]
        + totals["unmatched_usd"] + totals["idle_usd"],
        rel_tol=1e-9,
    )  # fmt: skip
    assert totals["idle_usd"] > 0
    # The series adds up to the totals; by endpoint the one endpoint carries all of it.
    series = doc["series"]
    assert len(series["t"]) == 3600 / 60
    assert math.isclose(sum(series["model_usd"]), truth.model_usd, rel_tol=1e-9)
    assert sum(series["requests"]) == answered
    assert math.isclose(sum(series["idle_usd"]), totals["idle_usd"], rel_tol=1e-9)
    assert doc["by"] == "endpoint"
    assert math.isclose(sum(series["by"]["digits"]), truth.cost_usd, rel_tol=1e-9)
    assert [g["key"] for g in doc["groups"]] == ["digits"]
    by_version = stats(server.url, by="version").json()
    assert [g["key"] for g in by_version["groups"]] == ["digits:1"]
    later = {"billed_usd", "idle_usd", "utilization"}  # the live run's bill grew since
    assert {k: v for k, v in by_version["totals"].items() if k not in later} == {
        k: v for k, v in totals.items() if k not in later
    }
    # Every batch a miss ran in, by release reason; queue delay from the rows.
    batches = doc["batches"]
    assert batches["count"] == sum(sum(c) for c in batches["by_reason"].values()) > 0
    assert set(batches["by_reason"]) >= {"full", "max_wait", "linger", "drain"}
    assert doc["today"]["spent_usd"] == pytest.approx(truth.cost_usd, rel=1e-9)


def test_an_empty_or_missing_ledger_reads_as_zeros(tmp_path: Path) -> None:
    """No ledger yet gives the whole document, every number zero, one bucket per step."""
    for location in (tmp_path / "not-yet.db", None):
        doc = ledger_document(LedgerSource(location), WINDOWS["15m"], now=1_800_000_000.0)
        assert doc["totals"]["requests"] == 0
        assert doc["totals"]["cost_usd"] == doc["totals"]["billed_usd"] == 0
        assert len(doc["series"]["t"]) == 30
        assert doc["status"] == {} and doc["budgets"] == []
        assert doc["ledger"] is (location is not None)


def test_windows_parse_and_bad_ones_name_the_field() -> None:
    """15m, 1h, 24h and 7d are windows (1h by default); anything else names `window`."""
    assert parse_window(None).name == "1h"
    spans = [parse_window(w).span_s for w in ("15m", "1h", "24h", "7d")]
    assert spans == [900, 3600, 86400, 604800]
    for bad in ("", "2h", "1H", "-1h", "x" * 100):
        with pytest.raises(InvalidInput) as caught:
            parse_window(bad)
        assert caught.value.field == "window"


def test_a_bad_window_or_grouping_is_refused_over_http_naming_it(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """?window=3d or ?by=key answers 400 with a JSON body naming the parameter."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    r = stats(server.url, "3d")
    assert r.status_code == 400
    assert r.json()["field"] == "window"
    assert "15m, 1h, 24h, 7d" in r.json()["hint"]
    r = stats(server.url, by="key")
    assert r.status_code == 400
    assert r.json()["field"] == "by"
    assert "endpoint, model, version" in r.json()["hint"]
    twice = httpx.get(f"{server.url}/dashboard/stats?by=model&by=", timeout=30)
    assert twice.status_code == 400 and twice.json()["field"] == "by"


def test_page_and_files_are_served_from_the_package(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """The page, its script, its style and uPlot with its licence; nothing else under static."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    page = httpx.get(f"{server.url}/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "https://" not in page.text and "http://" not in page.text
    for name, kind in (("dashboard.js", "text/javascript"), ("uplot.min.js", "text/javascript"),
                       ("dashboard.css", "text/css"), ("uplot.LICENSE", "text/plain")):  # fmt: skip
        r = httpx.get(f"{server.url}/dashboard/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
    assert "MIT License" in httpx.get(f"{server.url}/dashboard/static/uplot.LICENSE").text
    for bad in ("stats.py", "..%2Fstats.py", "dashboard.html"):
        r = httpx.get(f"{server.url}/dashboard/static/{bad}")
        assert r.status_code == 404 and r.json()["field"] == "path", bad


def test_with_auth_only_viewer_and_admin_keys_read_the_stats(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """No key 401, a user key 403, viewer and admin 200; the page itself needs no key."""
    config = digits_config(digits_model_file, tmp_path)
    config["auth"] = {"keys": str(tmp_path / "keys.db"), "reload_interval_s": 0.05}
    store = KeyStore(tmp_path / "keys.db")
    secrets = {role: store.create(role, role, budget_usd_day=2.5 if role == "user" else None)[1]
               for role in ("user", "viewer", "admin")}  # fmt: skip
    server = serve(parse_config(config))
    assert stats(server.url).status_code == 401
    user = stats(server.url, authorization=f"Bearer {secrets['user']}")
    assert user.status_code == 403 and "may not read metrics" in user.json()["error"]
    for role in ("viewer", "admin"):
        r = stats(server.url, authorization=f"Bearer {secrets[role]}")
        assert r.status_code == 200, (role, r.text)
        assert r.json()["budgets"] == [
            {"key": "user", "spent_usd": 0.0, "budget_usd_day": 2.5, "share": 0.0}
        ]
    assert httpx.get(f"{server.url}/dashboard").status_code == 200


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))
        except OSError:
            return None
        host: str = probe.getsockname()[0]
    return None if host.startswith("127.") else host


def test_without_auth_the_dashboard_answers_loopback_only(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """Reached on a non-loopback address with auth off, page and stats answer 403."""
    host = outward_address()
    if host is None:
        pytest.skip("this machine has no non-loopback address to call from")
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    with ServerProcess(config, "--insecure", host="0.0.0.0") as server:
        outside = f"http://{host}:{server.port}"
        for path in ("/dashboard", "/dashboard/stats", "/dashboard/static/dashboard.js"):
            r = httpx.get(outside + path, timeout=30)
            assert r.status_code == 403 and "loopback" in r.json()["error"], path
            assert httpx.get(server.url + path, timeout=30).status_code == 200, path


def test_polls_of_one_window_share_one_query(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    """Two polls within the interval return the same ledger part (one query), live read anew."""
    server = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    first, second = stats(server.url).json(), stats(server.url).json()
    assert first["until"] == second["until"]
    assert time.time() >= first["until"]
