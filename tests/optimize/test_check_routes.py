"""`frugal check` on routes: cascades priced by the share of items reaching each tier (from a
real calibration, a real server's ledger, or the baseline), splits by their weights, shadows by
their sample rate, and rules named as not priced."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import yaml
from click.testing import Result

from frugal.accounting.ledger import LedgerRow, SqliteLedger
from frugal.config import parse_config
from frugal.runtimes import sha256_of
from tests.conftest import DIGITS_INPUTS, ServerInThread
from tests.optimize.cascades import invoke
from tests.optimize.profiles import point, profile, write

PRICE, SLOTS = 0.10, 2  # c7i.large's 2 vCPUs at a round price
RATES = {"small": 4000.0, "large": 400.0, "canary": 800.0}  # items/s a slot at batch 8
THRESHOLD = 0.9


def usd_per_1k(model: str) -> float:
    """What one item of ``model`` costs per 1k at its profiled rate (DESIGN.md's cost model)."""
    return 1000 * PRICE / 3600 / (SLOTS * RATES[model])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> dict[str, Path]:
    """A weak small model and a stronger large one on digits; canary is large's twin."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    folder = tmp_path_factory.mktemp("check-routes")
    small = LogisticRegression(C=0.01, max_iter=3000).fit(x[:300], y[:300])
    large = LogisticRegression(max_iter=3000).fit(x[:1200], y[:1200])
    paths = {name: folder / f"{name}.joblib" for name in RATES}
    joblib.dump(small, paths["small"])
    joblib.dump(large, paths["large"])
    joblib.dump(large, paths["canary"])
    return paths


class Routes:
    """A frugal.yaml over real models with hand-made profiles of known rates, and a baseline."""

    def __init__(self, folder: Path, models: dict[str, Path], endpoints: list[Any]) -> None:
        self.dir = folder
        self.baseline = folder / "cost-baseline.json"
        self.ledger = folder / "ledger.db"
        self.config: dict[str, Any] = {
            "instance": {"type": "c7i.large", "price_usd_per_hour": PRICE},
            "models": [
                {"name": name, "version": "1", "runtime": "sklearn", "path": str(path),
                 "sha256": sha256_of(path), "inputs": DIGITS_INPUTS,
                 "batching": {"max_batch_size": 16, "timeout_ms": 30000}}
                for name, path in models.items()
            ],
            "endpoints": endpoints,
            "ledger": {"path": str(self.ledger), "flush_interval_ms": 10},
        }  # fmt: skip
        self.write_config()
        for name, path in models.items():
            points = [point(1, 1.0, RATES[name] / 4), point(8, 4.0, RATES[name])]
            write(folder / "profiles" / f"{name}.json",
                  profile(points, name=name, sha256=sha256_of(path)))  # fmt: skip

    @property
    def path(self) -> Path:
        return self.dir / "frugal.yaml"

    def write_config(self) -> None:
        self.path.write_text(yaml.safe_dump(self.config))

    def check(self, *args: Any) -> Result:
        return invoke("check", "--config", self.path, "--baseline", self.baseline, *args)

    def endpoint(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.baseline.read_text())["endpoints"][name])


def cascade(threshold: float = THRESHOLD, **extra: Any) -> dict[str, Any]:
    return {"name": "digits", "route": {"cascade": [
        {"model": "small", "accept": {"confidence": f">= {threshold}"}}, {"model": "large"}],
        **extra}}  # fmt: skip


def flat(result: Result) -> str:
    return " ".join(result.output.split())


def record(ledger: Path, rows: list[tuple[str, str, int]], *, ts: float | None = None,
           shadow: bool = False) -> None:  # fmt: skip
    """Requests (endpoint, route, items) written by the server's own ledger writer."""
    writer = SqliteLedger(ledger, flush_interval_ms=1)
    writer.open(instance="c7i.large", price_usd_per_hour=PRICE, slots=SLOTS)
    for i, (endpoint, route, items) in enumerate(rows):
        writer.record(LedgerRow(ts=time.time() if ts is None else ts, request_id=f"r{i}",
                                endpoint=endpoint, model="small", version="1", items=items,
                                batch_size=items, queue_ms=0, compute_ms=1, latency_ms=1,
                                cost_usd=1e-6, status=200, route=route, shadow=shadow))  # fmt: skip
    writer.close()


def test_cascade_priced_from_a_real_calibration(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    """calibrate --write --out, then check --calibration: small for every item plus large for
    the escalated share the calibration measured at the written threshold."""
    project = Routes(tmp_path, models, [cascade()])
    x, y = digits
    np.savez(tmp_path / "labeled.npz", X=x[1200:], y=y[1200:])
    out = tmp_path / "calibration.json"
    result = invoke("calibrate", project.path, "--endpoint", "digits", "--data",
                    tmp_path / "labeled.npz", "--max-drop", "0.02", "--holdout", "0",
                    "--write", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    escalated = json.loads(out.read_text())["chosen"]["calibration"]["escalation_rate"]
    assert 0 < escalated < 1
    result = project.check("--qps", "100", "--update", "--calibration", out)
    assert result.exit_code == 0, result.output
    digits_cost = project.endpoint("digits")
    assert digits_cost["route"] == "cascade" and digits_cost["shares_source"] == "calibration"
    assert [p["share"] for p in digits_cost["parts"]] == pytest.approx([1.0, escalated])
    assert digits_cost["usd_per_1k"] == pytest.approx(
        usd_per_1k("small") + escalated * usd_per_1k("large")
    )
    assert "chosen thresholds" in digits_cost["shares_detail"]
    assert f"items reaching each tier small:1 100.0% > large:1 {escalated:.1%}" in flat(result)


def test_cascade_priced_from_a_real_servers_ledger(
    models: dict[str, Path], tmp_path: Path, digits: Any
) -> None:
    """Requests served over HTTP leave `route` in the ledger; check reads the escalated share
    from it, which is the share of items the small model was unsure of."""
    project = Routes(tmp_path, models, [cascade()])
    x, _ = digits
    rows = x[1200:1440]
    with ServerInThread(parse_config(project.config)) as server:
        for start in range(0, len(rows), 16):
            batch = [row.tolist() for row in rows[start : start + 16]]
            r = httpx.post(f"{server.url}/v1/endpoints/digits/predict",
                           json={"instances": batch}, timeout=60)  # fmt: skip
            assert r.status_code == 200
    proba = joblib.load(models["small"]).predict_proba(rows)
    escalated = float((proba.max(axis=1) < THRESHOLD).mean())
    assert 0 < escalated < 1
    result = project.check("--qps", "100", "--update")
    assert result.exit_code == 0, result.output
    digits_cost = project.endpoint("digits")
    assert digits_cost["shares_source"] == "ledger"
    assert [p["share"] for p in digits_cost["parts"]] == pytest.approx([1.0, escalated])
    assert "(last 7d: 15 requests, 240 items)" in digits_cost["shares_detail"]


def test_ledger_shares_count_only_this_cascade_in_the_window(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Rule, cache-hit, shadow, other-endpoint and old rows are not the cascade's traffic:
    (7 + 3) + (7 + 3) + 10 items reached small and 6 reached large, so large's share is 0.2."""
    project = Routes(tmp_path, models, [cascade()])
    record(project.ledger, [("digits", "small:1*7>large:1*3", 10)] * 2
           + [("digits", "small:1*10", 10), ("digits", "rule:busy", 5), ("digits", "", 4),
              ("digits", "rule:gold>large:1*4", 4), ("other", "small:1*1>large:1*9", 10),
              ("digits", "small:1!>large:1", 1)])  # fmt: skip
    record(project.ledger, [("digits", "large:1*50", 50)], ts=time.time() - 30 * 86400)
    record(project.ledger, [("digits", "small:1*0>large:1*20", 20)], shadow=True)
    result = project.check("--qps", "100", "--update")
    assert result.exit_code == 0, result.output
    digits_cost = project.endpoint("digits")
    assert [p["share"] for p in digits_cost["parts"]] == pytest.approx([1.0, 0.2])
    assert "(last 7d: 3 requests, 30 items)" in digits_cost["shares_detail"]
    result = project.check("--since", "60d", "--update")  # the old row went through other tiers
    assert result.exit_code == 0, result.output
    assert project.endpoint("digits")["parts"][1]["share"] == pytest.approx(0.2)


def test_more_escalation_in_the_ledger_fails_the_gate(
    models: dict[str, Path], tmp_path: Path
) -> None:
    """Baseline at 20% escalated; a week where half the items escalate costs +86%: exit 1."""
    project = Routes(tmp_path, models, [cascade()])
    record(project.ledger, [("digits", "small:1*8>large:1*2", 10)])
    assert project.check("--qps", "100", "--update").exit_code == 0
    record(project.ledger, [("digits", "small:1*2>large:1*8", 10)] * 3)  # now 26 of 40
    result = project.check()
    assert result.exit_code == 1, result.output
    before = usd_per_1k("small") + 0.2 * usd_per_1k("large")
    now = usd_per_1k("small") + 26 / 40 * usd_per_1k("large")
    assert f"{now / before - 1:+.1%}" in result.output
    assert "baseline: small:1 100.0% > large:1 20.0%" in flat(result)


def test_split_shadow_and_rules(models: dict[str, Path], tmp_path: Path) -> None:
    """A 3:1 split is priced by its weights; a 10% shadow adds its cost, shown apart; rules
    are named as not priced."""
    endpoints = [
        {"name": "canary", "route": {"split": [{"model": "small", "weight": 3},
                                               {"model": "large", "weight": 1}]}},
        {"name": "shadowed", "route": {"model": "small",
                                       "shadow": {"model": "canary", "sample": 0.1}}},
        {"name": "ruled", "route": {"model": "large", "rules": [
            {"name": "hurry", "when": {"deadline_ms": "< 20"}, "model": "small"}]}},
    ]  # fmt: skip
    project = Routes(tmp_path, models, endpoints)
    result = project.check("--qps", "100", "--update")
    assert result.exit_code == 0, result.output
    split = project.endpoint("canary")
    assert split["route"] == "split" and split["model"] == "small:1 | large:1"
    assert split["usd_per_1k"] == pytest.approx(
        0.75 * usd_per_1k("small") + 0.25 * usd_per_1k("large")
    )
    shadowed = project.endpoint("shadowed")
    assert shadowed["model"] == "small:1"
    assert shadowed["shadow_usd_per_1k"] == pytest.approx(0.1 * usd_per_1k("canary"))
    assert shadowed["usd_per_1k"] == pytest.approx(usd_per_1k("small") + 0.1 * usd_per_1k("canary"))
    ruled = project.endpoint("ruled")
    assert ruled["usd_per_1k"] == pytest.approx(usd_per_1k("large"))
    out = flat(result)
    assert "canary: versions small:1 75.0% | large:1 25.0%, by the configured weights" in out
    assert "shadowed: shadow canary:1 on 10% of requests" in out and "shadow now" in out
    assert "ruled: 1 rule(s) (route.rules) not priced: the route is priced as if no rule" in out
    # Sending 3/4 of the traffic to the dear version instead is a rise the gate refuses.
    project.config["endpoints"][0]["route"]["split"][0]["weight"] = 1
    project.config["endpoints"][0]["route"]["split"][1]["weight"] = 3
    project.write_config()
    result = project.check()
    assert result.exit_code == 1, result.output
    flipped = 0.25 * usd_per_1k("small") + 0.75 * usd_per_1k("large")
    assert f"{flipped / split['usd_per_1k'] - 1:+.1%}" in result.output
    assert "cost gate failed: canary rose" in flat(result)


def test_cascade_without_shares_exits_2(models: dict[str, Path], tmp_path: Path) -> None:
    """No calibration, no ledger traffic and no baseline shares: exit 2 naming what to give."""
    project = Routes(tmp_path, models, [cascade()])
    result = project.check("--qps", "100", "--update")
    assert result.exit_code == 2, result.output
    out = flat(result)
    assert "error: endpoint digits is a cascade" in out
    assert "--calibration FILE" in out and "--ledger PATH" in out
    result = project.check("--qps", "100", "--update", "--ledger", tmp_path / "absent.db")
    assert result.exit_code == 2 and "absent.db: no ledger here" in flat(result)
    result = project.check("--qps", "100", "--update", "--since", "lately")
    assert result.exit_code == 2 and "--since" in result.output


def calibration_file(path: Path, thresholds: list[float], answered: list[float],
                     tiers: tuple[str, ...] = ("small:1", "large:1")) -> Path:  # fmt: skip
    """A `frugal calibrate --out` file reduced to what check reads."""
    outcome = {"thresholds": thresholds, "answered": answered}
    path.write_text(json.dumps({
        "format": "frugal-calibrate/1", "endpoint": "digits",
        "tiers": [{"model": t} for t in tiers], "calibration_items": 100, "holdout_items": 0,
        "chosen": {"calibration": outcome, "holdout": None},
        "current": {"calibration": outcome, "holdout": None}, "points": [outcome],
    }))  # fmt: skip
    return path


def test_baseline_shares_are_reused_like_with_like(models: dict[str, Path], tmp_path: Path) -> None:
    """Shares from a calibration stay the baseline's until another calibration is given: a
    price rise is compared at them, and a ledger that says otherwise does not replace them."""
    project = Routes(tmp_path, models, [cascade()])
    calib = calibration_file(tmp_path / "c.json", [THRESHOLD], [0.7, 0.3])
    assert project.check("--qps", "100", "--update", "--calibration", calib).exit_code == 0
    assert project.endpoint("digits")["parts"][1]["share"] == pytest.approx(0.3)
    project.config["instance"]["price_usd_per_hour"] = PRICE * 1.05
    project.write_config()
    record(project.ledger, [("digits", "small:1*5>large:1*5", 10)])
    result = project.check()
    assert result.exit_code == 0, result.output
    assert "+5.0%" in result.output and "large:1 30.0%, from calibration" in flat(result)
    assert "(as the baseline)" in flat(result)
    dearer = calibration_file(tmp_path / "c2.json", [THRESHOLD], [0.5, 0.5])
    result = project.check("--calibration", dearer)
    assert result.exit_code == 1, result.output
    assert "baseline: small:1 100.0% > large:1 30.0%" in flat(result)


def test_new_thresholds_need_new_shares(models: dict[str, Path], tmp_path: Path) -> None:
    """The baseline's shares were measured at >= 0.9: at >= 0.95 they say nothing, so the gate
    asks for a calibration at the new threshold, and then compares with it."""
    project = Routes(tmp_path, models, [cascade()])
    calib = calibration_file(tmp_path / "c.json", [THRESHOLD], [0.7, 0.3])
    assert project.check("--qps", "100", "--update", "--calibration", calib).exit_code == 0
    project.config["endpoints"] = [cascade(0.95)]
    project.write_config()
    result = project.check()
    assert result.exit_code == 2, result.output
    out = flat(result)
    assert "the baseline's shares are for small:1 > large:1 at thresholds 0.9" in out
    assert "the config has small:1 > large:1 at 0.95" in out
    stricter = calibration_file(tmp_path / "c95.json", [0.95], [0.6, 0.4])
    result = project.check("--calibration", stricter)
    assert result.exit_code == 1, result.output  # 10 more points escalated to the dear tier
    before = usd_per_1k("small") + 0.3 * usd_per_1k("large")
    now = usd_per_1k("small") + 0.4 * usd_per_1k("large")
    assert f"{now / before - 1:+.1%}" in result.output


def test_a_change_of_share_source_is_pointed_out(models: dict[str, Path], tmp_path: Path) -> None:
    """A baseline priced from the ledger, checked with a calibration: the output says the
    sources differ, so a change may be the shares' and not the config's."""
    project = Routes(tmp_path, models, [cascade()])
    record(project.ledger, [("digits", "small:1*7>large:1*3", 10)])
    assert project.check("--qps", "100", "--update").exit_code == 0
    calib = calibration_file(tmp_path / "c.json", [THRESHOLD], [0.7, 0.3])
    result = project.check("--calibration", calib)
    assert result.exit_code == 0, result.output
    assert "baseline took its shares from the ledger, this run from the calibration" in flat(result)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other thresholds", "has no result at endpoint digits's thresholds 0.9"),
        ("other tiers", "calibrated tiers small:1 > canary:1"),
        ("not a calibration", "not a calibration"),
        ("missing", "file not found"),
    ],
)
def test_bad_calibrations_exit_2(
    models: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    """A calibration of other thresholds or tiers, or not a calibration at all: exit 2."""
    project = Routes(tmp_path, models, [cascade()])
    path = tmp_path / "c.json"
    if case == "other thresholds":
        calibration_file(path, [0.5], [0.9, 0.1])
    elif case == "other tiers":
        calibration_file(path, [THRESHOLD], [0.9, 0.1], tiers=("small:1", "canary:1"))
    elif case == "not a calibration":
        path.write_text('{"format": "frugal-profile/1"}')
    result = project.check("--qps", "100", "--update", "--calibration", path)
    assert result.exit_code == 2, result.output
    assert message in flat(result)


def test_an_old_baseline_still_loads(models: dict[str, Path], tmp_path: Path) -> None:
    """A baseline written before routes were priced (no route, parts or shares keys) passes."""
    project = Routes(tmp_path, models, [{"name": "plain", "model": "small"}])
    assert project.check("--qps", "100", "--update").exit_code == 0
    data = json.loads(project.baseline.read_text())
    new = ("route", "parts", "shares_source", "shares_detail", "shadow_usd_per_1k", "not_priced")
    for key in new:
        del data["endpoints"]["plain"][key]
    project.baseline.write_text(json.dumps(data))
    result = project.check()
    assert result.exit_code == 0, result.output
    assert "+0.0%" in result.output
