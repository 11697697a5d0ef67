"""The cost model's arithmetic, and how the configured instance becomes a price and slots."""

from __future__ import annotations

import os
import re
from importlib import resources
from typing import Any

import pytest
import yaml

from frugal.accounting import InstanceType, Pricer, load_catalog, resolve_pricer
from frugal.config import InstanceConfig
from frugal.errors import ConfigError


def instance_type(name: str, *, vcpus: int, gpus: int = 0, price: float = 1.0) -> InstanceType:
    return InstanceType(
        name=name,
        provider="test",
        vcpus=vcpus,
        gpus=gpus,
        price_usd_per_hour=price,
        source="https://example.com/prices",
        as_of="2025-06",
    )


CATALOG = {
    "cpu.large": instance_type("cpu.large", vcpus=2, price=0.09),
    "cpu.xlarge": instance_type("cpu.xlarge", vcpus=4, price=0.18),
    "gpu.xlarge": instance_type("gpu.xlarge", vcpus=4, gpus=1, price=1.0),
    "gpu.8x": instance_type("gpu.8x", vcpus=96, gpus=8, price=20.0),
}


def test_item_cost_is_price_times_busy_over_slots_and_items() -> None:
    """An item costs price/3600 x its batch's busy seconds / slots / items in the batch."""
    pricer = Pricer(price_usd_per_hour=0.36, slots=2)
    assert pricer.price_usd_per_second == pytest.approx(0.0001)
    assert pricer.batch_cost_usd(0.5) == pytest.approx(0.36 / 3600 * 0.5 / 2)
    assert pricer.item_cost_usd(0.5, 10) == pytest.approx(0.36 / 3600 * 0.5 / 2 / 10)
    assert pricer.item_cost_usd(0.5, 10) * 10 == pytest.approx(pricer.batch_cost_usd(0.5))


@pytest.mark.parametrize("processes", [1, 2, 3, 4, 5, 7])
def test_worker_processes_price_a_slot_second_the_same_for_any_count(processes: int) -> None:
    """--workers N: each process bills 1/N of the machine and prices a busy slot-second as the
    whole machine does, whether or not N divides the slots; together they bill it once."""
    whole = Pricer(price_usd_per_hour=0.36, slots=4)
    share = whole.shared_by(processes)
    assert share.item_cost_usd(0.5, 8) == pytest.approx(whole.item_cost_usd(0.5, 8))
    assert processes * share.billed_usd(60.0) == pytest.approx(whole.billed_usd(60.0))
    assert share.workers == max(1, 4 // processes)  # never more threads than its slots hold


def test_billed_is_price_over_wall_time() -> None:
    """Billed dollars are the price over wall time, whatever the slots."""
    assert Pricer(price_usd_per_hour=3.6, slots=4).billed_usd(100) == pytest.approx(0.1)


def test_all_slots_busy_for_the_wall_time_allocates_the_bill() -> None:
    """Every slot busy for the whole wall time allocates exactly what is billed."""
    pricer = Pricer(price_usd_per_hour=1.7, slots=3)
    allocated = sum(pricer.item_cost_usd(60.0, 7) * 7 for _slot in range(3))
    assert allocated == pytest.approx(pricer.billed_usd(60.0))


def test_item_cost_of_an_empty_batch_does_not_divide_by_zero() -> None:
    """A batch of no items is priced as if it held one."""
    pricer = Pricer(price_usd_per_hour=3.6, slots=1)
    assert pricer.item_cost_usd(1.0, 0) == pricer.batch_cost_usd(1.0)


def test_explicit_price_without_type() -> None:
    """A price with no type gives a custom instance of one slot unless slots are given, and
    this machine's CPUs unless vcpus are given."""
    cpus = os.cpu_count() or 1
    assert resolve_pricer(InstanceConfig(price_usd_per_hour=0.5), CATALOG) == Pricer(
        0.5, 1, cpus=cpus
    )
    pricer = resolve_pricer(InstanceConfig(price_usd_per_hour=0.5, slots=3, vcpus=8), CATALOG)
    assert pricer == Pricer(0.5, 3, "custom", cpus=8)


def test_catalog_type_gives_its_price() -> None:
    """A catalog type gives that type's price and name."""
    pricer = resolve_pricer(InstanceConfig(type="cpu.xlarge"), CATALOG)
    assert pricer == Pricer(price_usd_per_hour=0.18, slots=4, instance="cpu.xlarge", cpus=4)


def test_explicit_price_wins_over_the_catalog() -> None:
    """An explicit price overrides the catalog's, keeping the type's slots."""
    pricer = resolve_pricer(InstanceConfig(type="cpu.large", price_usd_per_hour=0.05), CATALOG)
    assert pricer == Pricer(price_usd_per_hour=0.05, slots=2, instance="cpu.large", cpus=2)


def test_explicit_price_allows_a_type_not_in_the_catalog() -> None:
    """A type the catalog lacks is fine when the price is given."""
    pricer = resolve_pricer(InstanceConfig(type="my.box", price_usd_per_hour=0.4), CATALOG)
    assert pricer == Pricer(price_usd_per_hour=0.4, slots=1, instance="my.box",
                            cpus=os.cpu_count() or 1)  # fmt: skip


def test_unknown_type_is_a_config_error_with_a_suggestion() -> None:
    """An unknown type with no price names instance.type and suggests close catalog names."""
    with pytest.raises(ConfigError) as info:
        resolve_pricer(InstanceConfig(type="cpu.larg"), CATALOG)
    error = info.value
    assert error.field == "instance.type"
    assert "'cpu.larg'" in error.message
    assert error.hint is not None
    assert "did you mean cpu.large" in error.hint and "price_usd_per_hour" in error.hint


def test_unknown_type_with_nothing_close_still_hints_at_a_price() -> None:
    """An unknown type unlike any catalog name gets no suggestion but is told to give a price."""
    with pytest.raises(ConfigError) as info:
        resolve_pricer(InstanceConfig(type="zzzzzzzz"), CATALOG)
    assert info.value.hint is not None
    assert "did you mean" not in info.value.hint and "price_usd_per_hour" in info.value.hint


@pytest.mark.parametrize(
    ("name", "slots"), [("cpu.large", 2), ("cpu.xlarge", 4), ("gpu.xlarge", 1), ("gpu.8x", 8)]
)
def test_slots_default_to_vcpus_or_gpus(name: str, slots: int) -> None:
    """Slots default to the vCPUs of a CPU type and to the GPU count of a GPU type."""
    assert resolve_pricer(InstanceConfig(type=name), CATALOG).slots == slots


def test_explicit_slots_win_over_the_catalog() -> None:
    """Configured slots override the catalog's default."""
    assert resolve_pricer(InstanceConfig(type="gpu.8x", slots=2), CATALOG).slots == 2


def shipped_files() -> dict[str, dict[str, Any]]:
    """Each shipped catalog file's YAML, by file name (none while no catalog is shipped)."""
    folder = resources.files("frugal.accounting") / "catalog"
    if not folder.is_dir():
        return {}
    return {
        e.name: yaml.safe_load(e.read_text(encoding="utf-8"))
        for e in folder.iterdir()
        if e.name.endswith(".yaml")
    }


@pytest.mark.skipif(not shipped_files(), reason="no catalog files shipped yet")
def test_shipped_catalog_loads_with_sources_and_dates() -> None:
    """Every shipped catalog file loads; each entry has a positive price, a source and a date."""
    files = shipped_files()
    catalog = load_catalog()
    for name, data in files.items():
        assert data["instances"], f"{name} lists no instances"
    # No name is listed twice, so no file's entry silently shadows another's.
    assert len(catalog) == sum(len(data["instances"]) for data in files.values())
    assert {spec.provider for spec in catalog.values()} == {d["provider"] for d in files.values()}
    for name, spec in catalog.items():
        assert spec.name == name
        assert spec.price_usd_per_hour > 0, name
        assert spec.vcpus >= 1 and spec.gpus >= 0, name
        assert re.match(r"^https://\S+$", spec.source), name
        assert re.match(r"^\d{4}-\d{2}(-\d{2})?$", spec.as_of), name
    assert catalog["c7i.large"].vcpus == 2 and catalog["c7i.large"].gpus == 0


@pytest.mark.skipif(not shipped_files(), reason="no catalog files shipped yet")
def test_shipped_catalog_resolves_by_default() -> None:
    """With no catalog passed, resolve_pricer reads the shipped one."""
    pricer = resolve_pricer(InstanceConfig(type="c7i.large"))
    assert pricer.price_usd_per_hour == load_catalog()["c7i.large"].price_usd_per_hour
    assert pricer.slots == 2
