"""`frugal plan`: the cheapest type on a hand-checkable catalog, SLO, budget, missing profiles,
and the serverless break-even."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from frugal.accounting.catalog import InstanceType, ServerlessOffer
from frugal.cli import main
from frugal.config import InstanceConfig
from frugal.optimize.costing import project_cost
from frugal.optimize.plan import PlanInputs, PlanRow, apply_override, choose_batch, make_plan
from frugal.optimize.profiles import ProfileRecord, read_profile
from frugal.optimize.serverless import break_even, project_serverless
from tests.optimize.profiles import CPU, T4, point, profile, write


def instance(
    name: str, vcpus: int, price: float, gpus: int = 0, gpu: str | None = None
) -> InstanceType:
    return InstanceType(name=name, provider="aws", vcpus=vcpus, gpus=gpus,
                        price_usd_per_hour=price, source="test", as_of="now", gpu=gpu)  # fmt: skip


CATALOG = {
    "small-cpu": instance("small-cpu", 2, 0.10),
    "big-cpu": instance("big-cpu", 8, 0.32),
    "gpu-t4": instance("gpu-t4", 4, 0.50, gpus=1, gpu="T4"),
}
CATALOG_YAML = {
    "provider": "aws",
    "source": "test",
    "as_of": "now",
    "instances": {
        "small-cpu": {"vcpus": 2, "gpus": 0, "price_usd_per_hour": 0.10},
        "big-cpu": {"vcpus": 8, "gpus": 0, "price_usd_per_hour": 0.32},
        "gpu-t4": {"vcpus": 4, "gpus": 1, "gpu": "T4", "price_usd_per_hour": 0.50},
    },
}
INPUTS = PlanInputs(qps=10_000, slo_ms=50, headroom=0.5, max_wait_ms=2)


def records(tmp_path: Path, *profiles: dict[str, Any]) -> list[ProfileRecord]:
    return [read_profile(write(tmp_path / f"p{i}.json", p)) for i, p in enumerate(profiles)]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def plan_args(tmp_path: Path, *profiles: dict[str, Any]) -> list[str]:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(CATALOG_YAML))
    args = ["plan", "--catalog", str(catalog), "--headroom", "0.5"]
    for i, p in enumerate(profiles):
        args += ["--profile", str(write(tmp_path / f"cli{i}.json", p))]
    return args


def test_plan_picks_the_cheapest_type(tmp_path: Path) -> None:
    """At 10,000/s within 50 ms the 2-vCPU type wins: 3 replicas x $0.10/h = $219/month."""
    plan = make_plan(records(tmp_path, CPU, T4), CATALOG, INPUTS)
    assert isinstance(plan.choice, PlanRow) and plan.choice.instance == "small-cpu"
    by_name = {r.instance: r.projection for r in plan.rows}
    small, big, t4 = by_name["small-cpu"], by_name["big-cpu"], by_name["gpu-t4"]
    assert small is not None and big is not None and t4 is not None
    # CPU: batch 32's bound 2 x 30 + 2 = 62 ms misses 50 ms, so batch 8 (4,000 items/s a slot).
    assert (small.batch_size, small.slots, small.replicas) == (8, 2, 3)
    assert small.usd_per_month == pytest.approx(3 * 0.10 * 730)
    assert small.usd_per_1k == pytest.approx(1000 * 3 * 0.10 / 3600 / 10_000)
    assert small.utilization == pytest.approx(10_000 / (3 * 8000))
    assert (big.slots, big.replicas) == (8, 1) and big.usd_per_month == pytest.approx(0.32 * 730)
    assert (t4.batch_size, t4.slots, t4.replicas) == (64, 1, 1)
    assert [r.instance for r in plan.rows] == ["small-cpu", "big-cpu", "gpu-t4"]
    runners_up = [r.instance if isinstance(r, PlanRow) else r for r in plan.runners_up]
    assert runners_up == ["big-cpu", "gpu-t4"]


def test_plan_respects_the_slo(tmp_path: Path) -> None:
    """At a 7 ms SLO the T4 (batch-1 p99 8 ms) cannot meet it and CPUs drop to batch 1."""
    plan = make_plan(records(tmp_path, CPU, T4), CATALOG, PlanInputs(qps=10_000, slo_ms=7,
                                                                    headroom=0.5))  # fmt: skip
    t4 = next(r for r in plan.rows if r.instance == "gpu-t4")
    assert t4.status == "cannot meet SLO" and t4.projection is None
    assert "batch-1 p99 8 ms > SLO 7 ms" in t4.reason
    assert isinstance(plan.choice, PlanRow) and plan.choice.instance == "big-cpu"
    p = plan.choice.projection
    assert p is not None and (p.batch_size, p.replicas) == (1, 3)  # 10,000 / (8 x 1,000 x 0.5)
    assert p.usd_per_month == pytest.approx(3 * 0.32 * 730)


def test_choose_batch_keeps_room_for_queueing(tmp_path: Path) -> None:
    """A batch fits when 2 x p99 + max_wait <= SLO; the fastest fitting batch is chosen."""
    (cpu,) = records(tmp_path, CPU)

    def batch_size(slo_ms: float) -> int | None:
        chosen, _ = choose_batch(cpu, slo_ms, 2.0)
        return None if chosen is None else chosen.batch_size

    assert (batch_size(10.0), batch_size(9.9), batch_size(62.0)) == (8, 1, 32)
    assert choose_batch(cpu, 3.9, 2.0) == (None, 4.0)


def test_plan_cli_budget_verdict(tmp_path: Path) -> None:
    """Nothing under $200/month (the cheapest is $219): the plan says so and exits 1."""
    result = invoke(*plan_args(tmp_path, CPU, T4), "--qps", "10000", "--slo-ms", "50",
                    "--budget-usd-month", "200")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "nothing fits the budget of $200.00/month" in result.output
    assert "small-cpu, costs $219.00/month" in result.output
    result = invoke(*plan_args(tmp_path, CPU, T4), "--qps", "10000", "--slo-ms", "50",
                    "--budget-usd-month", "220")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "choice: small-cpu x 3 at batch 8: $219.00/month" in result.output


def test_plan_cli_refuses_hardware_without_profile(tmp_path: Path) -> None:
    """With only a CPU profile the T4 type gets no number, only the command to profile it."""
    out = tmp_path / "plan.json"
    result = invoke(*plan_args(tmp_path, CPU), "--qps", "10000", "--slo-ms", "50",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("  gpu:T4: gpu-t4")
    assert "frugal profile models/digits-lr.joblib --device cuda" in lines[at + 1]
    assert not any("gpu-t4" in line and "$" in line for line in lines)
    data = json.loads(out.read_text())
    assert [r["instance"] for r in data["rows"]] == ["small-cpu", "big-cpu"]
    assert data["no_profile"][0]["hardware_class"] == "gpu:T4"
    assert data["no_profile"][0]["instances"] == ["gpu-t4"]
    assert data["choice"]["instance"] == "small-cpu"
    assert data["inputs"]["qps"] == 10_000


def test_plan_cli_cannot_meet_slo_exits_1(tmp_path: Path) -> None:
    """When no profiled type can meet the SLO, each says why and the plan exits 1."""
    result = invoke(*plan_args(tmp_path, CPU, T4), "--qps", "100", "--slo-ms", "0.5")
    assert result.exit_code == 1
    assert "no profiled option can meet the 0.5 ms SLO" in result.output
    assert "gpu-t4: cannot meet SLO: batch-1 p99 8 ms > SLO 0.5 ms" in result.output


def test_serverless_break_even_matches_hand_computation(tmp_path: Path) -> None:
    """1,024 MB x 2 ms at $1e-5/GB-s + $0.20/M = $2.2e-7 a request; $0.10/h breaks even at
    0.10 / 3600 / 2.2e-7 = 126.26 requests/s, where both cost $73/month."""
    offer = ServerlessOffer(name="fn", provider="aws", price_usd_per_gb_second=1e-5,
                            price_usd_per_million_requests=0.2, source="test", as_of="now",
                            memory_step_mb=64, min_memory_mb=128, mb_per_vcpu=1000)  # fmt: skip
    # batch-1 mean 1.5 ms is billed as 2 ms; 1 thread needs 1,000 MB -> 1,024 MB in 64 MB steps.
    cpu = profile([point(1, 3.0, 1000.0, mean_ms=1.5, peak_rss_mb=300.0), point(8, 4.0, 4000.0)])
    plan = make_plan(records(tmp_path, cpu), CATALOG, INPUTS, serverless=[offer])
    (fn,) = plan.serverless
    assert (fn.memory_mb, fn.billed_ms) == (1024, 2.0)
    assert fn.usd_per_request == pytest.approx(1e-5 * 1.0 * 0.002 + 0.2e-6)
    (even,) = plan.break_evens
    assert even.instance == "small-cpu" and even.qps is not None
    assert even.qps == pytest.approx(0.10 / 3600 / 2.2e-7)
    assert even.qps == pytest.approx(126.2626, rel=1e-5)
    at = project_cost(price_usd_per_hour=0.10, slots=2, batch_size=8,
                      items_per_s_per_slot=4000.0, qps=even.qps, headroom=0.5)  # fmt: skip
    serverless_month = fn.usd_per_request * even.qps * 730 * 3600
    assert at.usd_per_month == pytest.approx(serverless_month) == pytest.approx(73.0)


def test_serverless_cheaper_at_every_rate(tmp_path: Path) -> None:
    """A dedicated type that costs more per request even when full never breaks even."""
    offer = ServerlessOffer(name="fn", provider="aws", price_usd_per_gb_second=1e-5,
                            price_usd_per_million_requests=0.2, source="t", as_of="t")  # fmt: skip
    (cpu,) = records(tmp_path, profile([point(1, 1.0, 10.0, mean_ms=1.0)]))
    fn = project_serverless(offer, cpu, qps=1.0, slo_ms=50)
    # 2 slots x 10 items/s x 0.5 = 10 requests/s for $0.10/h: $2.8e-6 a request > fn's.
    dedicated = project_cost(price_usd_per_hour=0.10, slots=2, batch_size=1,
                             items_per_s_per_slot=10.0, qps=1.0, headroom=0.5)  # fmt: skip
    even = break_even(fn, "small-cpu", dedicated)
    assert even.qps is None and "cheaper at every rate" in even.note
    assert fn.usd_per_request < 0.10 / 3600 / 10


def test_config_overrides_price_and_slots(tmp_path: Path) -> None:
    """frugal.yaml's instance price and slots replace the catalog's; a bare price adds a type."""
    override = InstanceConfig(type="big-cpu", price_usd_per_hour=0.05, slots=4)
    catalog, slots = apply_override(CATALOG, override)
    assert catalog["big-cpu"].price_usd_per_hour == 0.05 and slots == {"big-cpu": 4}
    plan = make_plan(records(tmp_path, CPU), catalog, INPUTS, slot_overrides=slots)
    assert isinstance(plan.choice, PlanRow) and plan.choice.instance == "big-cpu"
    assert plan.choice.projection is not None and plan.choice.projection.slots == 4
    catalog, slots = apply_override(CATALOG, InstanceConfig(price_usd_per_hour=0.01, slots=1))
    assert catalog["custom"].provider == "custom" and slots == {"custom": 1}


def test_plan_cli_config_override(tmp_path: Path) -> None:
    """`--config` with a cheap custom price makes that instance the choice."""
    config = tmp_path / "frugal.yaml"
    config.write_text(yaml.safe_dump({
        "instance": {"price_usd_per_hour": 0.01, "slots": 2},
        "models": [{"name": "m", "runtime": "python", "factory": "mod:make"}],
    }))  # fmt: skip
    result = invoke(*plan_args(tmp_path, CPU), "--qps", "10000", "--slo-ms", "50",
                    "--config", str(config))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "choice: custom x 3 at batch 8" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found"),
        ("{not json", "not a readable JSON file"),
        ('{"format": "frugal-plan/1"}', "not a frugal profile (format 'frugal-plan/1'"),
        ("[1, 2]", "not a frugal profile (format None"),
        ('{"format": "frugal-profile/1", "model": {}}', "malformed profile"),
    ],
)
def test_plan_bad_profile_exits_2(tmp_path: Path, content: str | None, message: str) -> None:
    """A missing, non-JSON or non-profile file exits 2 naming the file, without a traceback."""
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    result = invoke("plan", "--profile", str(path), "--qps", "10", "--slo-ms", "50")
    assert result.exit_code == 2
    assert f"error: {path}: {message}" in result.output
    assert "Traceback" not in result.output


def test_plan_rejects_bad_points_and_mixed_models(tmp_path: Path) -> None:
    """Zero items/s, or profiles of two different model files, are refused with exit 2."""
    bad = profile([point(1, 1.0, 0.0)])
    result = invoke(*plan_args(tmp_path, bad), "--qps", "10", "--slo-ms", "50")
    assert result.exit_code == 2 and "points[0].items_per_s must be > 0" in result.output
    other = profile([point(1, 1.0, 10.0)], hardware_class="gpu:T4", sha256="cd" * 32)
    result = invoke(*plan_args(tmp_path, CPU, other), "--qps", "10", "--slo-ms", "50")
    assert result.exit_code == 2 and "plan one model at a time" in result.output


def test_project_cost_is_the_ledger_cost_over_utilization() -> None:
    """Billed $/1k = allocated $/1k / utilization, and allocated is the Pricer's item cost."""
    p = project_cost(price_usd_per_hour=0.36, slots=2, batch_size=8, items_per_s_per_slot=400.0,
                     qps=300.0, headroom=0.7)  # fmt: skip
    assert p.replicas == math.ceil(300 / (800 * 0.7)) == 1
    assert p.allocated_usd_per_1k == pytest.approx(1000 * 0.36 / 3600 * (8 / 400) / 2 / 8)
    assert p.usd_per_1k == pytest.approx(p.allocated_usd_per_1k / p.utilization)


def test_help_lists_plan_and_check() -> None:
    """`frugal --help` lists both verbs, and `plan --help` states the no-guessing rule."""
    result = invoke("--help")
    assert "  plan " in result.output and "  check " in result.output
    assert "Only hardware with a profile is priced" in invoke("plan", "--help").output


def test_profile_without_batch_1_skips_serverless(tmp_path: Path) -> None:
    """Serverless is priced from batch 1; a profile that starts at 8 leaves it unpriced."""
    offer = ServerlessOffer(name="fn", provider="aws", price_usd_per_gb_second=1e-5,
                            price_usd_per_million_requests=0.2, source="t", as_of="t")  # fmt: skip
    cpu = profile([point(8, 4.0, 4000.0)])
    plan = make_plan(records(tmp_path, cpu), CATALOG, INPUTS, serverless=[offer])
    assert plan.serverless == () and plan.choice is not None
    assert "aws/fn not priced: it needs a cpu profile with batch size 1" in plan.notes
