"""`frugal plan` chooses honestly: the server's CPU from end-to-end profiles, one latency rule for
instances and serverless, cold starts, burstable credits, dated catalogs. Numbers by hand."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.accounting.catalog import InstanceType, ServerlessOffer, age_in_months, load_catalog
from frugal.cli import main
from frugal.optimize.plan import PlanInputs, PlanRow, make_plan
from frugal.optimize.profile import hardware_class
from frugal.optimize.profiles import ProfileRecord, read_profile
from frugal.optimize.serverless import ServerlessProjection
from frugal.optimize.throughput import replica_throughput
from tests.optimize.profiles import CPU, end_to_end, level, point, profile, write

TODAY = date(2026, 12, 6)


def instance(name: str, vcpus: int, price: float, **extra: Any) -> InstanceType:
    return InstanceType(name=name, provider="aws", vcpus=vcpus, gpus=0, price_usd_per_hour=price,
                        source="https://example.com/prices", as_of="2026-11", **extra)  # fmt: skip


CATALOG = {"small-cpu": instance("small-cpu", 2, 0.10), "big-cpu": instance("big-cpu", 8, 0.32)}
FN = ServerlessOffer(name="fn", provider="aws", price_usd_per_gb_second=0.0000166667,
                     price_usd_per_million_requests=0.20, source="https://example.com/fn",
                     as_of="2026-11", mb_per_vcpu=1769)  # fmt: skip


# 700 req/s at 1 connection (0.8 ms of server CPU each), 2,500 at 16 (0.4 ms), 2,600 at 64.
E2E = end_to_end(CPU, level(1, 700, 2.0, 0.8), level(16, 2500, 5.0, 0.4), level(64, 2600, 40, 0.35))


def records(tmp_path: Path, *profiles: dict[str, Any]) -> list[ProfileRecord]:
    return [read_profile(write(tmp_path / f"p{i}.json", p)) for i, p in enumerate(profiles)]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def catalog_file(tmp_path: Path, instances: dict[str, Any], as_of: str = "2026-11",
                 serverless: dict[str, Any] | None = None) -> Path:  # fmt: skip
    data = {"provider": "aws", "source": "https://example.com/prices", "as_of": as_of,
            "instances": instances, "serverless": serverless or {}}  # fmt: skip
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_end_to_end_profile_bounds_replicas_by_the_servers_cpu(tmp_path: Path) -> None:
    """200,000 req/s within 10 ms: the model alone needs 36 small replicas; counting 0.4 ms of
    server CPU a request (concurrency 16, p99 5 ms) a 2-vCPU replica carries 2 / 0.0004 = 5,000
    req/s, so 58 replicas, and the 8-vCPU type (20,000 req/s, 15 replicas) becomes cheaper."""
    inputs = PlanInputs(qps=200_000, slo_ms=10, headroom=0.7)
    model_only = make_plan(records(tmp_path, CPU), CATALOG, inputs, today=TODAY)
    small = next(r for r in model_only.rows if r.instance == "small-cpu").projection
    assert small is not None and small.replicas == math.ceil(200_000 / (2 * 4000 * 0.7)) == 36
    assert "model-only profile" in model_only.figures[0]
    assert "`frugal profile models/digits-lr.joblib --http" in model_only.figures[0]

    plan = make_plan(records(tmp_path, E2E), CATALOG, inputs, today=TODAY)
    rows = {r.instance: r for r in plan.rows}
    small_row, big_row = rows["small-cpu"], rows["big-cpu"]
    assert small_row.level is not None and small_row.level.concurrency == 16
    assert small_row.latency_bound_ms == 5.0 and small_row.figures == "end-to-end profile"
    p = small_row.projection
    assert p is not None and p.limited_by == "server CPU"
    assert p.capacity_items_per_s == pytest.approx(5000)
    assert p.replicas == math.ceil(200_000 / (5000 * 0.7)) == 58
    assert big_row.projection is not None and big_row.projection.replicas == 15
    assert isinstance(plan.choice, PlanRow) and plan.choice.instance == "big-cpu"
    assert plan.choice.usd_per_month == pytest.approx(15 * 0.32 * 730)
    assert plan.verdict.startswith("choice: big-cpu x 15 end to end at concurrency 16: $3,504.00")
    assert "end-to-end profile" in plan.figures[0] and "0.4 ms of server CPU" in plan.figures[0]


def test_end_to_end_level_is_the_fastest_clean_one_within_the_slo(tmp_path: Path) -> None:
    """A level with errors is no figure; at 3 ms only concurrency 1 fits; at 1 ms none does."""
    errors = end_to_end(CPU, level(1, 700, 2.0, 0.8), level(16, 2500, 5.0, 0.4),
                        level(64, 2600, 8.0, 0.35, errors=3))  # fmt: skip
    plan = make_plan(records(tmp_path, errors), CATALOG, PlanInputs(qps=100, slo_ms=50),
                     today=TODAY)  # fmt: skip
    assert all(r.level is not None and r.level.concurrency == 16 for r in plan.rows)
    plan = make_plan(records(tmp_path, E2E), CATALOG, PlanInputs(qps=100, slo_ms=3), today=TODAY)
    row = next(r for r in plan.rows if r.instance == "small-cpu")
    assert row.level is not None and row.level.concurrency == 1
    assert row.projection is not None and row.projection.capacity_items_per_s == 2 / 0.0008
    plan = make_plan(records(tmp_path, E2E), CATALOG, PlanInputs(qps=100, slo_ms=1), today=TODAY)
    assert {r.status for r in plan.rows} == {"cannot meet SLO"}
    assert plan.rows[0].reason == "end-to-end p99 2 ms at concurrency 1 > SLO 1 ms"


# A MiniLM-like CPU profile: batch-1 p99 15 ms (mean 7 ms), 140 items/s, loads in 1.5 s.
SLOW = {**profile([point(1, 15.0, 140.0, mean_ms=7.0, peak_rss_mb=300.0)]), "model_load_s": 1.5}
# $ per request: 1,769 MB (one vCPU) x 7 ms at $0.0000166667/GB-s, plus $0.20 per million.
WARM_REQUEST = 0.0000166667 * 1769 / 1024 * 0.007 + 0.2e-6


def test_serverless_is_chosen_when_it_alone_meets_the_rule(tmp_path: Path) -> None:
    """5 req/s within 30 ms: an instance's bound is 2 x 15 + 2 = 32 ms and misses; the function's
    is its 15 ms p99 (no batch to fill, no queue, cold starts on e^-3000 of requests), so plan
    chooses it and exits 0 where it used to exit 1."""
    plan = make_plan(records(tmp_path, SLOW), CATALOG, PlanInputs(qps=5, slo_ms=30),
                     serverless=[FN], today=TODAY)  # fmt: skip
    assert {r.status for r in plan.rows} == {"cannot meet SLO"}
    assert plan.rows[0].reason == "batch-1 bound 2 x 15 + 2 ms wait = 32 ms > SLO 30 ms"
    (fn,) = plan.serverless
    assert fn.latency_bound_ms == 15.0 and fn.meets_slo and fn.cold_start_share < 1e-9
    assert plan.choice is fn
    assert fn.usd_per_request == pytest.approx(WARM_REQUEST)
    assert fn.usd_per_month == pytest.approx(WARM_REQUEST * 5 * 730 * 3600)
    expected = f"choice: serverless aws/fn at 1769 MB: ${fn.usd_per_month:,.2f}/month"
    assert plan.verdict == f"{expected}, ${fn.usd_per_1k:.4g} per 1k requests"
    catalog = catalog_file(tmp_path, {"small-cpu": {"vcpus": 2, "price_usd_per_hour": 0.10}},
                           serverless={"fn": {"price_usd_per_gb_second": 0.0000166667,
                                              "price_usd_per_million_requests": 0.2,
                                              "mb_per_vcpu": 1769}})  # fmt: skip
    out = tmp_path / "plan.json"
    result = invoke("plan", "--profile", str(write(tmp_path / "slow.json", SLOW)), "--catalog",
                    str(catalog), "--qps", "5", "--slo-ms", "30", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "choice: serverless aws/fn at 1769 MB" in result.output
    data = json.loads(out.read_text())
    assert data["choice"]["kind"] == "serverless" and data["choice"]["offer"] == "aws/fn"


def test_serverless_is_chosen_when_cheapest_of_options_that_all_fit(tmp_path: Path) -> None:
    """With a 50 ms SLO both fit; 5 req/s costs ~$5 a month as calls, $73 as one instance."""
    plan = make_plan(records(tmp_path, SLOW), CATALOG, PlanInputs(qps=5, slo_ms=50),
                     serverless=[FN], today=TODAY)  # fmt: skip
    small = next(r for r in plan.rows if r.instance == "small-cpu")
    assert small.status == "ok" and small.usd_per_month == pytest.approx(73.0)
    assert isinstance(plan.choice, ServerlessProjection)
    assert plan.choice.usd_per_month == pytest.approx(5.276, rel=1e-3)
    assert [getattr(o, "instance", None) for o in plan.runners_up] == ["small-cpu", "big-cpu"]
    plan = make_plan(records(tmp_path, SLOW), CATALOG, PlanInputs(qps=2000, slo_ms=50),
                     serverless=[FN], today=TODAY)  # fmt: skip
    assert isinstance(plan.choice, PlanRow)  # 2,000 req/s: instances win


def test_one_rule_counts_each_options_waits(tmp_path: Path) -> None:
    """The bound is service p99 + fill + queue + start-up for every option: model-only instances
    2 x p99 + max_wait; end-to-end instances the measured HTTP p99; a function its p99, plus its
    1.5 s init once cold starts reach 1% of requests (one request per 1,000 s, 600 s warm:
    e^-0.6 = 55% cold), which then misses the SLO and is not chosen."""
    inputs = PlanInputs(qps=0.001, slo_ms=30, max_wait_ms=2)
    plan = make_plan(records(tmp_path, SLOW), CATALOG, inputs, serverless=[FN], today=TODAY)
    (fn,) = plan.serverless
    share = math.exp(-0.001 * 600)
    assert fn.cold_start_share == pytest.approx(share) and fn.init_s == 1.5
    assert fn.latency_bound_ms == pytest.approx(15.0 + 1500.0) and not fn.meets_slo
    cold_cost = share * 0.0000166667 * 1769 / 1024 * 1.5  # the init is billed
    assert fn.usd_per_request == pytest.approx(WARM_REQUEST + cold_cost)
    assert plan.choice is None and plan.verdict == "no profiled option can meet the 30 ms SLO"
    model_only = make_plan(records(tmp_path, CPU), CATALOG, PlanInputs(qps=10, slo_ms=50),
                           today=TODAY)  # fmt: skip
    assert model_only.rows[0].latency_bound_ms == 2 * 4.0 + 2  # batch 8
    e2e = make_plan(records(tmp_path, E2E), CATALOG, PlanInputs(qps=10, slo_ms=50), today=TODAY)
    assert e2e.rows[0].latency_bound_ms == 40.0  # concurrency 64's measured p99, nothing added
    keep = make_plan(records(tmp_path, SLOW), CATALOG, PlanInputs(qps=0.001, slo_ms=30,
                     keep_warm_s=1e6), serverless=[FN], today=TODAY)  # fmt: skip
    assert keep.serverless[0].latency_bound_ms == 15.0  # warm for days: cold starts < 1%


def test_a_profile_without_load_time_prices_no_cold_start(tmp_path: Path) -> None:
    """An old profile cannot time a cold start: the function is priced warm and says so."""
    old = profile([point(1, 15.0, 140.0, mean_ms=7.0, peak_rss_mb=300.0)])
    plan = make_plan(records(tmp_path, old), CATALOG, PlanInputs(qps=0.001, slo_ms=30),
                     serverless=[FN], today=TODAY)  # fmt: skip
    (fn,) = plan.serverless
    assert fn.init_s is None and fn.latency_bound_ms == 15.0
    assert fn.usd_per_request == pytest.approx(WARM_REQUEST)
    assert any("cold starts are neither timed nor priced" in a for a in fn.assumptions)


BURST = {"baseline_cpu_share": 0.2, "burstable": True}


@pytest.mark.parametrize(
    ("extra", "qps", "replicas", "credits", "note"),
    [
        # need 2,000 x 0.4 ms = 0.8 vCPU; 1 replica's baseline covers 0.4: 0.4 vCPU-h/h surplus
        ({"surplus_usd_per_vcpu_hour": 0.05}, 2000, 1, 0.4 * 0.05 * 730,
         "needs 40.0% of each vCPU, over its 20% baseline: surplus CPU at $0.05/vCPU-hour adds"),
        # at $0.50/vCPU-hour the surplus ($146) costs more than a second replica ($29.20)
        ({"surplus_usd_per_vcpu_hour": 0.5}, 2000, 2, 0.0,
         "2 replicas keep each within it (cheaper than paying for surplus CPU)"),
        # no paid surplus (B-series): throttled, so replicas are added
        ({}, 2000, 2, 0.0, "2 replicas keep each within it (it has no paid surplus"),
        ({"surplus_usd_per_vcpu_hour": 0.05}, 500, 1, 0.0,
         "10.0% of each vCPU is within its 20% baseline"),
    ],
)  # fmt: skip
def test_burstable_types_pay_for_cpu_over_their_baseline(
    tmp_path: Path, extra: dict[str, Any], qps: float, replicas: int, credits: float, note: str
) -> None:
    """A burstable type is priced with its credits from the server's CPU per request."""
    catalog = {"burst": instance("burst", 2, 0.04, **BURST, **extra)}
    plan = make_plan(records(tmp_path, E2E), catalog, PlanInputs(qps=qps, slo_ms=10), today=TODAY)
    (row,) = plan.rows
    assert row.status == "ok" and row.projection is not None
    assert row.projection.replicas == replicas
    assert row.projection.cpu_credit_usd_per_month == pytest.approx(credits)
    assert row.usd_per_month == pytest.approx(replicas * 0.04 * 730 + credits)
    assert note in row.credit_note and row.credit_note in plan.notes


def test_burstable_type_without_a_baseline_is_excluded(tmp_path: Path) -> None:
    """Without a baseline share its sustained speed is unknown: excluded, with the reason."""
    catalog = {**CATALOG, "burst": instance("burst", 2, 0.01, burstable=True)}
    plan = make_plan(records(tmp_path, E2E), catalog, PlanInputs(qps=100, slo_ms=10), today=TODAY)
    burst = next(r for r in plan.rows if r.instance == "burst")
    assert burst.status == "excluded" and "gives no baseline_cpu_share" in burst.reason
    assert isinstance(plan.choice, PlanRow) and plan.choice.instance == "small-cpu"


@pytest.mark.parametrize(
    ("as_of", "today", "months"),
    [("2025-06", date(2026, 12, 6), 18), ("2025-12-10", date(2026, 12, 6), 11),
     ("2026-12", date(2026, 12, 6), 0), ("", date(2026, 12, 6), None), ("June 2025", TODAY, None)],
)  # fmt: skip
def test_age_in_months(as_of: str, today: date, months: int | None) -> None:
    """Catalog dates are YYYY-MM or YYYY-MM-DD; anything else has no age."""
    assert age_in_months(as_of, today) == months


def test_plan_prints_catalog_sources_and_warns_when_old(tmp_path: Path) -> None:
    """A catalog dated 2020-01 draws a warning naming its date; a row's own recent date, which
    overrides the file's, draws none; both sources are printed with the answer."""
    catalog = catalog_file(tmp_path, {
        "small-cpu": {"vcpus": 2, "price_usd_per_hour": 0.10},
        "fresh-cpu": {"vcpus": 2, "price_usd_per_hour": 0.11, "as_of": date.today().isoformat(),
                      "source": "https://example.com/fresh"},
    }, as_of="2020-01")  # fmt: skip
    loaded = load_catalog([catalog])
    assert loaded["fresh-cpu"].source == "https://example.com/fresh"
    assert loaded["small-cpu"].as_of == "2020-01"
    result = invoke("plan", "--profile", str(write(tmp_path / "cpu.json", CPU)), "--catalog",
                    str(catalog), "--qps", "100", "--slo-ms", "50")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "prices: aws small-cpu: https://example.com/prices, as of 2020-01" in text
    assert "prices: aws fresh-cpu: https://example.com/fresh, as of" in text
    assert "warning: aws prices of small-cpu are as of 2020-01," in text
    assert "months before today" in text and "fresh-cpu are as of" not in text
    plan = make_plan(records(tmp_path, CPU), load_catalog([catalog]), PlanInputs(qps=1, slo_ms=50),
                     today=TODAY)  # fmt: skip
    assert any("as of 2020-01, 83 months before today (2026-12-06)" in w for w in plan.warnings)


def test_shipped_catalog_has_the_new_types_with_source_and_date() -> None:
    """Graviton, c5.2xlarge, single-H100 and Inferentia2 types load with a source and a date."""
    catalog = load_catalog()
    c7g = catalog["c7g.large"]
    assert (c7g.arch, c7g.vcpus, c7g.price_usd_per_hour, c7g.as_of) == ("arm64", 2, 0.0725,
                                                                         "2026-01-19")  # fmt: skip
    assert catalog["c7g.xlarge"].arch == "arm64" and catalog["c5.2xlarge"].vcpus == 8
    for name in ("p5.4xlarge", "a3-highgpu-1g"):
        assert (catalog[name].gpus, catalog[name].gpu) == (1, "H100-80GB")
    assert catalog["inf2.xlarge"].accelerator == "inferentia2"
    for name in ("c7g.large", "c7g.xlarge", "c5.2xlarge", "p5.4xlarge", "inf2.xlarge",
                 "a3-highgpu-1g"):  # fmt: skip
        assert catalog[name].source.startswith("https://") and catalog[name].as_of
    t3 = catalog["t3.medium"]
    assert (t3.baseline_cpu_share, t3.surplus_usd_per_vcpu_hour) == (0.2, 0.05)
    b2s = catalog["Standard_B2s"]
    assert (b2s.baseline_cpu_share, b2s.surplus_usd_per_vcpu_hour) == (0.2, None)


def test_graviton_and_inferentia_are_not_priced_from_an_x86_profile(tmp_path: Path) -> None:
    """An x86 cpu profile prices x86 types only; arm64 gets the command to measure it there,
    Inferentia2 the reason no frugal runtime can."""
    plan = make_plan(records(tmp_path, CPU), load_catalog(), PlanInputs(qps=100, slo_ms=50,
                     provider="aws"), today=TODAY)  # fmt: skip
    priced = {r.instance for r in plan.rows}
    assert "c7g.large" not in priced and "inf2.xlarge" not in priced and "c5.2xlarge" in priced
    missing = {m.hardware_class: m for m in plan.missing}
    assert missing["cpu:arm64"].instances == ("c7g.large", "c7g.xlarge")
    assert missing["cpu:arm64"].command.startswith("on an arm64 machine: frugal profile")
    assert "no frugal runtime runs on inferentia2" in missing["inferentia2"].command
    assert "p5.4xlarge" in missing["gpu:H100-80GB"].instances
    assert hardware_class(None, "aarch64") == "cpu:arm64"
    assert hardware_class(None, "x86_64") == "cpu"
    arm = profile([point(1, 1.0, 900.0)], hardware_class="cpu:arm64")
    plan = make_plan(records(tmp_path, arm), load_catalog(), PlanInputs(qps=100, slo_ms=50,
                     provider="aws"), today=TODAY)  # fmt: skip
    assert {r.instance for r in plan.rows} == {"c7g.large", "c7g.xlarge"}


def test_replica_throughput_for_check(tmp_path: Path) -> None:
    """Model-only: slots x items/s; end to end: the smaller of that and vCPUs / CPU per request
    at the peak level (or the level given)."""
    (cpu,) = records(tmp_path, CPU)
    t = replica_throughput(cpu, cpu.points[1], vcpus=2, slots=2)
    assert (t.figures, t.requests_per_s, t.limited_by, t.level) == ("model-only profile", 8000,
                                                                     "model", None)  # fmt: skip
    (e2e,) = records(tmp_path, E2E)
    t = replica_throughput(e2e, e2e.points[1], vcpus=2, slots=2)
    assert t.level is not None and t.level.concurrency == 64  # the most req/s
    assert t.requests_per_s == pytest.approx(2 / 0.00035) and t.limited_by == "server CPU"
    assert t.model_requests_per_s == 8000
    assert e2e.http is not None
    t = replica_throughput(e2e, e2e.points[1], vcpus=2, slots=2, level=e2e.http.levels[0])
    assert t.requests_per_s == pytest.approx(2500) and t.cpu_s_per_request == 0.0008


def test_cost_gate_example_plans_tens_of_instances_not_two() -> None:
    """The committed digits profile, end to end: 200,000 req/s within 10 ms on AWS needs
    ceil(200,000 / (2 vCPUs / CPU per request x 0.7)) 2-vCPU replicas, tens, where the model
    alone answered 2; the output says it used end-to-end figures."""
    path = Path(__file__).parents[2] / "examples/cost-gate/profiles/digits.json"
    record = read_profile(path)
    assert record.http is not None and record.model_load_s is not None
    level = record.http.best_within(10)
    assert level is not None
    expected = math.ceil(200_000 / (2 / level.server_cpu_s_per_request * 0.7))
    result = invoke("plan", "--profile", str(path), "--qps", "200000", "--slo-ms", "10",
                    "--provider", "aws")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"choice: c6i.large x {expected} end to end at concurrency {level.concurrency}" in text
    assert expected >= 10 and "cpu: end-to-end profile" in text
    inputs = PlanInputs(qps=200_000, slo_ms=10, provider="aws")
    without = dataclasses.replace(record, http=None)
    model_only = make_plan([without], load_catalog(), inputs, today=TODAY)
    assert isinstance(model_only.choice, PlanRow) and model_only.choice.projection is not None
    assert model_only.choice.projection.replicas <= 3


def test_plan_cli_keep_warm_sets_the_cold_starts(tmp_path: Path) -> None:
    """--keep-warm-s reaches the plan: at one request per 1,000 s, 600 s warm leaves 55% of
    requests cold (the 1.5 s init is in the bound), 10^6 s warm none; --help names the option."""
    catalog = catalog_file(tmp_path, {"small-cpu": {"vcpus": 2, "price_usd_per_hour": 0.10}},
                           serverless={"fn": {"price_usd_per_gb_second": 0.0000166667,
                                              "price_usd_per_million_requests": 0.2,
                                              "mb_per_vcpu": 1769}})  # fmt: skip
    args = ["plan", "--profile", str(write(tmp_path / "slow.json", SLOW)), "--catalog",
            str(catalog), "--qps", "0.001", "--slo-ms", "30"]  # fmt: skip
    cold = invoke(*args)
    assert cold.exit_code == 1, cold.output
    assert (
        "bound 1.52e+03 ms (batch-1 p99 15 ms + 1500 ms init (cold starts on 54.88%))"
        in " ".join(cold.output.split())
    )
    warm = invoke(*args, "--keep-warm-s", "1000000")
    assert warm.exit_code == 0, warm.output
    assert "choice: serverless aws/fn" in warm.output
    assert "--keep-warm-s" in invoke("plan", "--help").output
    assert invoke(*args, "--keep-warm-s", "0").exit_code == 2
