"""Before Ray starts: what replicas cannot share is refused naming the field, each model's
deployment is sized from its share of the instance, a layout that cannot be placed is refused,
and errors cross a Ray call intact. No Ray needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from frugal.accounting import Pricer
from frugal.cli import main
from frugal.config import FrugalConfig
from frugal.errors import ConfigError, DeadlineExceeded, Overloaded
from frugal.scale.ray_deploy import (
    RayOptions,
    check_fits,
    check_shared_state,
    deployment_name,
    plan_models,
)
from frugal.scale.ray_replicas import replica_pricer
from frugal.scale.ray_wire import (
    error_from_wire,
    error_to_wire,
    outcomes_from_wire,
    outcomes_to_wire,
)
from frugal.types import ItemOutcome, Prediction
from tests.conftest import digits_config, write_config


def config_with(model_file: Path, tmp_path: Path, **overrides: Any) -> FrugalConfig:
    return FrugalConfig.model_validate(digits_config(model_file, tmp_path, **overrides))


def test_a_memory_cache_is_refused_naming_the_field(
    digits_model_file: Path, tmp_path: Path
) -> None:
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"store": "memory"}
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.cache\.store"):
        check_shared_state(FrugalConfig.model_validate(data))
    data["endpoints"][0]["cache"] = {"store": "redis"}
    check_shared_state(FrugalConfig.model_validate(data))  # Redis is shared: accepted


def test_serve_ray_refuses_a_memory_cache_with_exit_2(
    digits_model_file: Path, tmp_path: Path
) -> None:
    """The CLI says which field and what to do, before touching Ray."""
    data = digits_config(digits_model_file, tmp_path)
    data["endpoints"][0]["cache"] = {"store": "memory"}
    path = write_config(tmp_path, data)
    result = CliRunner().invoke(main, ["serve", str(path), "--ray", "--address", "local"])
    assert result.exit_code == 2, result.output
    assert "endpoints[0].cache.store" in result.output
    assert "store: redis" in result.output
    assert "Traceback" not in result.output


def test_serve_ray_refuses_workers(digits_model_file: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    result = CliRunner().invoke(main, ["serve", str(path), "--ray", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_a_replica_holds_its_workers_share_of_the_instance(
    digits_model_file: Path, tmp_path: Path
) -> None:
    instance = {"price_usd_per_hour": 0.8, "slots": 4, "vcpus": 8}
    config = config_with(digits_model_file, tmp_path, instance=instance,
                         batching={"workers": 2, "max_batch_size": 8})  # fmt: skip
    pricer = Pricer(0.8, 4, "custom", cpus=8)
    (plan,) = plan_models(config, pricer)
    assert plan.deployment == deployment_name(config.models[0]) == "model-digits-1"
    assert plan.cpus == 4.0  # 2 of 4 slots: half the instance's 8 vCPUs
    assert plan.scaling.autoscaling_config["target_ongoing_requests"] == pytest.approx(0.7 * 16)
    share = replica_pricer(pricer, plan.cpus)
    assert share.price_usd_per_hour == pytest.approx(0.4)
    assert share.slots == pytest.approx(2)
    # A slot-second costs the same in a replica as in the whole instance.
    assert share.batch_cost_usd(1.0) == pytest.approx(pricer.batch_cost_usd(1.0))


def test_a_layout_that_does_not_fit_the_cluster_is_refused(
    digits_model_file: Path, tmp_path: Path
) -> None:
    config = config_with(digits_model_file, tmp_path,
                         instance={"price_usd_per_hour": 0.36, "slots": 2, "vcpus": 2})  # fmt: skip
    plans = plan_models(config, Pricer(0.36, 2, "custom", cpus=2))
    check_fits(plans, RayOptions(ingress_replicas=2, ingress_cpus=0.5), cluster_cpus=2)
    with pytest.raises(ConfigError, match=r"need 2\.5 CPUs"):
        check_fits(plans, RayOptions(ingress_replicas=3, ingress_cpus=0.5), cluster_cpus=2)


def test_errors_and_outcomes_cross_a_ray_call_intact() -> None:
    """Keyword-only errors (Overloaded's retry_after_s) survive the trip, pickled as Ray does."""
    import pickle

    error = Overloaded("queue full", retry_after_s=3.5, hint="retry later")
    back = error_from_wire(pickle.loads(pickle.dumps(error_to_wire(error))))
    assert isinstance(back, Overloaded)
    assert (back.message, back.retry_after_s, back.hint) == ("queue full", 3.5, "retry later")
    assert str(back) == str(error)
    outcomes = [
        ItemOutcome(Prediction(7, confidence=0.9), None, 0.01, None, "digits:1"),
        ItemOutcome(None, DeadlineExceeded("too late"), 0.2, None, "digits:1"),
    ]
    wire = pickle.loads(pickle.dumps(outcomes_to_wire(outcomes)))
    back_outcomes = outcomes_from_wire(wire)
    assert back_outcomes[0] == outcomes[0]
    assert isinstance(back_outcomes[1].error, DeadlineExceeded)
    assert str(back_outcomes[1].error) == "too late"
