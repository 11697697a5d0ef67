"""The dashboard's stats on a PostgreSQL ledger, served by a cascade: the same document as
SQLite gives, its numbers equal to the database's rows and the escalation rate to the metrics'."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from frugal.observability import WINDOWS, LedgerSource, ledger_document
from tests.accounting.test_ledger_postgres import query
from tests.conftest import DIGITS_INPUTS, ServerProcess, digits_config, write_config


def cascade_config(
    versions: dict[str, Path], tmp_path: Path, model_file: Path, pg_url: str
) -> dict[str, Any]:
    """Endpoint ``digits``: the weak version first, gated on confidence, then the strong one."""
    from frugal.runtimes import sha256_of

    config = digits_config(model_file, tmp_path)
    config["models"] = [
        {"name": "digits", "version": v, "runtime": "sklearn", "path": str(p),
         "sha256": sha256_of(p), "inputs": DIGITS_INPUTS}
        for v, p in versions.items()
    ]  # fmt: skip
    tiers = [{"model": "digits:1", "accept": {"confidence": ">= 0.5"}}, {"model": "digits:2"}]
    config["endpoints"] = [{"name": "digits", "route": {"cascade": tiers}}]
    config["ledger"] |= {"url": pg_url}
    return config


def first_tier_verdicts(metrics: str) -> dict[str, float]:
    """frugal_cascade_items_total of the first tier (digits:1), by result."""
    pattern = (
        r'frugal_cascade_items_total\{endpoint="digits",model="digits:1",result="(\w+)"\} (\S+)'
    )
    return {result: float(n) for result, n in re.findall(pattern, metrics)}


def test_stats_on_a_postgres_ledger_hold_its_rows_and_the_cascades_escalations(
    digit_versions: dict[str, Path],
    digits_model_file: Path,
    digits: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    pg_url: str,
) -> None:
    """Requests, dollars and statuses equal the database's; the escalation rate equals the
    share of the first tier's items the metrics counted as escalated."""
    config = write_config(tmp_path, cascade_config(digit_versions, tmp_path, digits_model_file,
                                                   pg_url))  # fmt: skip
    x, _ = digits
    with ServerProcess(config) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(40):
            body = {"instances": x[1300 + 3 * i : 1303 + 3 * i].tolist()}
            r = client.post("/v1/endpoints/digits/predict", json=body)
            assert r.status_code == 200, r.text
        verdicts = first_tier_verdicts(client.get("/metrics").text)
    # Stopped: every row is in the database with its overhead share.
    doc = ledger_document(LedgerSource(pg_url), WINDOWS["15m"], by="version")
    rows = query(pg_url, "SELECT cost_usd, status FROM requests WHERE shadow = 0")
    totals = doc["totals"]
    assert totals["requests"] == len(rows) == 40
    assert math.isclose(totals["cost_usd"], math.fsum(float(r[0]) for r in rows), rel_tol=1e-9)
    assert doc["status"] == {"200": 40}
    seen = sum(verdicts.values())
    assert seen == 120 and 0 < verdicts["escalated"] < seen
    cascade = doc["cascade"]
    assert (cascade["items"], cascade["escalated"]) == (seen, verdicts["escalated"])
    assert cascade["rate"] == verdicts["escalated"] / seen
    assert cascade["endpoints"]["digits"]["rate"] == cascade["rate"]
    # By version, each tier is charged what it ran (as `frugal report --by version`).
    by_version = {g["key"]: g for g in doc["groups"]}
    assert {"digits:1", "digits:2"} <= set(by_version)  # and requests answered by both
    assert math.isclose(sum(g["model_usd"] for g in by_version.values()), totals["model_usd"],
                        rel_tol=1e-9)  # fmt: skip
    series = doc["series"]["by"]
    assert math.isclose(sum(map(sum, series.values())), totals["cost_usd"], rel_tol=1e-9)
