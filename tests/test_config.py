"""Loading frugal.yaml: every error names the file and the field path; paths resolve sensibly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from frugal.config import load_config
from frugal.errors import ConfigError
from tests.conftest import write_config

SHA = "0" * 64


def python_model(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "python", "factory": "pkg.mod:build", **extra}


def sklearn_model(name: str = "a", **extra: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "sklearn", "path": "model.joblib", "sha256": SHA, **extra}


def config(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"instance": {"price_usd_per_hour": 0.36}, "models": [python_model()]}
    data.update(overrides)
    return data


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def assert_names(error: ConfigError, path: Path, field: str) -> None:
    assert error.file == str(path)
    assert error.field == field
    assert str(error).startswith(f"{path}: {field}: ")


def test_valid_config_loads(tmp_path: Path) -> None:
    """A minimal config loads with the defaults of every section filled in."""
    cfg = load_config(write_config(tmp_path, config(endpoints=[{"name": "e", "model": "a"}])))
    assert cfg.instance.price_usd_per_hour == 0.36
    assert [m.key for m in cfg.models] == ["a:1"]
    assert cfg.models[0].batching.max_wait_ms == 2.0
    endpoint = cfg.endpoints[0]
    assert endpoint.model is not None and cfg.find_model(endpoint.model) is cfg.models[0]


def test_bad_value_in_second_model_names_its_path(tmp_path: Path) -> None:
    """max_wait_ms: 0 on the second model is reported at models[1].batching.max_wait_ms as > 0."""
    models = [sklearn_model("a"), sklearn_model("b", batching={"max_wait_ms": 0})]
    path = write_config(tmp_path, config(models=models))
    error = load_error(path)
    assert_names(error, path, "models[1].batching.max_wait_ms")
    assert "greater than 0" in str(error)


def test_sklearn_model_without_sha256_is_refused(tmp_path: Path) -> None:
    """An sklearn model with no sha256 is an error on models[0] that says to give its sha256."""
    model = sklearn_model()
    del model["sha256"]
    path = write_config(tmp_path, config(models=[model]))
    error = load_error(path)
    assert_names(error, path, "models[0]")
    assert "sha256" in error.message


def test_endpoint_naming_unknown_model(tmp_path: Path) -> None:
    """An endpoint naming an undeclared model is reported at endpoints[0].model with the choices."""
    path = write_config(tmp_path, config(endpoints=[{"name": "e", "model": "nope"}]))
    error = load_error(path)
    assert_names(error, path, "endpoints[0].model")
    assert "'nope'" in str(error) and "a:1" in str(error)


def test_typo_key_is_an_error_naming_it(tmp_path: Path) -> None:
    """A misspelt key (batchng) is refused as an extra key at models[0].batchng."""
    path = write_config(tmp_path, config(models=[python_model(batchng={"max_wait_ms": 5})]))
    error = load_error(path)
    assert_names(error, path, "models[0].batchng")
    assert "extra" in str(error).lower()


def test_duplicate_model_version(tmp_path: Path) -> None:
    """Two models with the same name and version are refused at the second one."""
    path = write_config(tmp_path, config(models=[python_model(), python_model()]))
    error = load_error(path)
    assert_names(error, path, "models[1]")
    assert "duplicate model version a:1" in str(error)


def test_same_name_different_versions_is_fine(tmp_path: Path) -> None:
    """Two versions of one model load, and a bare name refers to the last declared one."""
    models = [python_model(version="1"), python_model(version="2")]
    cfg = load_config(write_config(tmp_path, config(models=models)))
    assert cfg.find_model("a") is cfg.models[1]
    assert cfg.find_model("a:1") is cfg.models[0]


def test_duplicate_endpoint_name(tmp_path: Path) -> None:
    """Two endpoints with the same name are refused at the second one's name."""
    endpoints = [{"name": "e", "model": "a"}, {"name": "e", "model": "a"}]
    path = write_config(tmp_path, config(endpoints=endpoints))
    error = load_error(path)
    assert_names(error, path, "endpoints[1].name")
    assert "duplicate endpoint e" in str(error)


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    """Invalid YAML is reported with the file and the line of the problem."""
    path = tmp_path / "frugal.yaml"
    path.write_text(
        "instance:\n  price_usd_per_hour: 1\nmodels:\n  - name: a\n    runtime: python\n"
        "   factory: x:y\n"
    )
    error = load_error(path)
    assert error.file == str(path)
    assert "not valid YAML at line 6" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    """A config file that does not exist is an error naming it."""
    path = tmp_path / "absent.yaml"
    error = load_error(path)
    assert error.file == str(path)
    assert "not found" in str(error) and str(path) in str(error)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_document_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    """A YAML document that is not a mapping (a list, a scalar, nothing) is refused clearly."""
    path = tmp_path / "frugal.yaml"
    path.write_text(text)
    error = load_error(path)
    assert error.file == str(path)
    assert "must be a mapping" in str(error)


def test_instance_with_neither_type_nor_price(tmp_path: Path) -> None:
    """An instance section with neither type nor price is refused at `instance`."""
    path = write_config(tmp_path, config(instance={"slots": 2}))
    error = load_error(path)
    assert_names(error, path, "instance")
    assert "type" in error.message and "price_usd_per_hour" in error.message


def test_missing_required_section(tmp_path: Path) -> None:
    """A config without `models` names the missing field."""
    data = config()
    del data["models"]
    path = write_config(tmp_path, data)
    assert_names(load_error(path), path, "models")


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """Relative model and ledger paths resolve against the config file's folder, not the cwd."""
    folder = tmp_path / "deploy"
    folder.mkdir()
    absolute = tmp_path / "elsewhere" / "abs.joblib"
    models = [sklearn_model("a"), sklearn_model("b", path=str(absolute))]
    data = config(models=models, ledger={"path": "data/ledger.db"})
    cfg = load_config(write_config(folder, data))
    assert cfg.models[0].path == folder.resolve() / "model.joblib"
    assert cfg.models[1].path == absolute
    assert cfg.ledger.path == folder.resolve() / "data" / "ledger.db"


def test_default_ledger_path_is_beside_the_config(tmp_path: Path) -> None:
    """With no ledger section, the ledger file lies in the config file's folder."""
    cfg = load_config(write_config(tmp_path, config()))
    assert cfg.ledger.path == tmp_path.resolve() / "frugal-ledger.db"


def test_price_per_hour_is_an_alias(tmp_path: Path) -> None:
    """`price_per_hour` is accepted as an alias of `price_usd_per_hour`."""
    cfg = load_config(write_config(tmp_path, config(instance={"price_per_hour": 1.25})))
    assert cfg.instance.price_usd_per_hour == 1.25


def test_negative_price_is_refused(tmp_path: Path) -> None:
    """A price that is not positive is refused at instance.price_usd_per_hour."""
    path = write_config(tmp_path, config(instance={"price_usd_per_hour": -1}))
    assert_names(load_error(path), path, "instance.price_usd_per_hour")


def openai_model(name: str = "gpt", **extra: Any) -> dict[str, Any]:
    upstream = {"base_url": "http://127.0.0.1:9/v1", "model": "gpt-4o-mini"}
    return {"name": name, "runtime": "openai", "upstream": upstream, **extra}


@pytest.mark.parametrize(
    ("models", "endpoints", "field", "says"),
    [
        ([{"name": "gpt", "runtime": "openai"}], [], "models[0].upstream", "needs an `upstream`"),
        ([openai_model(path="m.bin")], [], "models[0].path", "remove `path`"),
        ([python_model(upstream={"base_url": "http://x", "model": "m"})], [],
         "models[0].upstream", "is for runtime openai"),
        ([openai_model(upstream={"base_url": "ftp://x", "model": "m"})], [],
         "models[0].upstream.base_url", "match pattern"),
        ([openai_model(), python_model()], [{"name": "e", "route": {"fallback": ["gpt", "a"]}}],
         "endpoints[0].route.fallback[1]", "all runtime openai or none"),
        ([python_model(), python_model("b")], [{"name": "e", "route": {"fallback": ["a", "b"]}}],
         "endpoints[0].route.fallback", "for runtime openai models"),
        ([openai_model()], [{"name": "e", "model": "gpt", "route": {
            "fallback": ["gpt", "gpt"], "cascade": [{"model": "gpt"}, {"model": "gpt"}]}}],
         "endpoints[0].route", "exactly one of `model`, `cascade`, `fallback` or `split`"),
        ([python_model()], [{"name": "e", "model": "a", "llm": {"max_tokens": 5}}],
         "endpoints[0].llm", "for runtime openai"),
        ([openai_model()], [{"name": "e", "model": "gpt", "cache": {}}],
         "endpoints[0].cache", "not supported yet"),
    ],
)  # fmt: skip
def test_llm_upstream_config_errors_name_the_field(
    tmp_path: Path, models: list[Any], endpoints: list[Any], field: str, says: str
) -> None:
    """runtime openai needs `upstream` and no artifact; fallbacks and `llm` are LLM-only."""
    path = write_config(tmp_path, config(models=models, endpoints=endpoints))
    error = load_error(path)
    assert error.field == field
    assert says in str(error)


def test_an_llm_endpoint_with_a_fallback_and_token_limits_loads(tmp_path: Path) -> None:
    endpoint = {"name": "chat", "route": {"fallback": ["gpt", "backup"]},
                "llm": {"max_tokens": 64, "max_prompt_tokens": 1000}}  # fmt: skip
    cfg = load_config(write_config(tmp_path, config(
        models=[openai_model(), openai_model("backup")], endpoints=[endpoint])))  # fmt: skip
    assert cfg.endpoints[0].models == ["gpt", "backup"]
    upstream = cfg.models[0].upstream
    assert upstream is not None and upstream.max_retries == 2 and upstream.api_key_env is None
