"""The whole of frugal.yaml, and loading it: every error names the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from frugal.config._base import _FieldError, _Section
from frugal.config.alerts import AlertsConfig, check_alerts
from frugal.config.controller import ControllerConfig, check_controller
from frugal.config.models import InstanceConfig, ModelConfig
from frugal.config.routes import EndpointConfig, _check_llm_endpoint
from frugal.config.server import AuthConfig, LedgerConfig, ServerConfig
from frugal.errors import ConfigError


class FrugalConfig(_Section):
    instance: InstanceConfig
    models: list[ModelConfig] = Field(min_length=1)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    auth: AuthConfig | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)
    controller: ControllerConfig | None = None  # absent: no knob moves (docs/controller.md)
    alerts: AlertsConfig | None = None  # absent: the defaults (docs/alerts.md)

    @model_validator(mode="after")
    def _references(self) -> FrugalConfig:
        if self.auth is not None and not self.ledger.enabled:
            # Daily budgets are sums over the ledger, and the audit log lives in it.
            raise _FieldError("ledger.enabled", "auth needs the ledger (budgets and audit log)")
        seen: set[str] = set()
        for i, model in enumerate(self.models):
            if model.key in seen:
                raise _FieldError(f"models[{i}]", f"duplicate model version {model.key}")
            seen.add(model.key)
        names: set[str] = set()
        for i, endpoint in enumerate(self.endpoints):
            if endpoint.name in names:
                raise _FieldError(f"endpoints[{i}].name", f"duplicate endpoint {endpoint.name}")
            names.add(endpoint.name)
            found = []
            for field, ref in endpoint.refs():
                target = self.find_model(ref)
                if target is None:
                    declared = ", ".join(sorted(seen))
                    raise _FieldError(
                        f"endpoints[{i}].{field}", f"no model {ref!r}; declared: {declared}"
                    )
                found.append((field, target))
            _check_llm_endpoint(endpoint, found, f"endpoints[{i}]")
        check_controller(self)
        check_alerts([e.name for e in self.endpoints], self.alerts)
        return self

    @property
    def local_models(self) -> list[ModelConfig]:
        """Models this process loads and batches (every runtime but an upstream LLM)."""
        return [m for m in self.models if m.upstream is None]

    @property
    def upstream_models(self) -> list[ModelConfig]:
        """Upstream LLM APIs (``runtime: openai``): no artifact, no batcher, priced per token."""
        return [m for m in self.models if m.upstream is not None]

    def find_model(self, ref: str) -> ModelConfig | None:
        """``name`` means the last declared version of that name; ``name:version`` is exact."""
        name, _, version = ref.partition(":")
        found = [m for m in self.models if m.name == name and (not version or m.version == version)]
        return found[-1] if found else None


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("models", 1, "batching", "max_wait_ms")`` -> ``models[1].batching.max_wait_ms``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "union[")) or part in ("int", "float", "str"):
            continue  # pydantic's names for union branches and validators, not fields
        else:
            out += f".{part}" if out else part
    return out


def parse_config(data: Any, *, file: str = "", base_dir: Path | None = None) -> FrugalConfig:
    """Validate a mapping already read from YAML; relative paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping with `instance` and `models`", file=file)
    try:
        config = FrugalConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):  # raised by a nested section: prefix its path
            prefix = format_loc(err["loc"])
            field = f"{prefix}.{ctx_error.field}" if prefix else ctx_error.field
            raise ConfigError(ctx_error.message, field=field, file=file) from None
        message = err["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(message + more, field=format_loc(err["loc"]), file=file) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


def load_config(path: str | Path) -> FrugalConfig:
    """Read and validate frugal.yaml; every error names the file and, where it can, the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", file=str(path)) from None
    return parse_config(data, file=str(path), base_dir=path.resolve().parent)


def _resolve_paths(config: FrugalConfig, base_dir: Path) -> FrugalConfig:
    models = [
        m.model_copy(update={"path": base_dir / m.path})
        if m.path is not None and not m.path.is_absolute()
        else m
        for m in config.models
    ]
    ledger = config.ledger
    ledger = ledger.model_copy(update={
        name: base_dir / value
        for name in ("path", "audit_key_file", "audit_head_file")
        if (value := getattr(ledger, name)) is not None and not value.is_absolute()
    })  # fmt: skip
    auth = config.auth
    if auth is not None and not auth.keys.is_absolute():
        auth = auth.model_copy(update={"keys": base_dir / auth.keys})
    endpoints = []
    for endpoint in config.endpoints:
        cache = endpoint.cache
        if cache is not None:
            cache = cache.model_copy(update={
                name: base_dir / value
                for name in ("path", "warmup")
                if (value := getattr(cache, name)) is not None and not value.is_absolute()
            })  # fmt: skip
            endpoint = endpoint.model_copy(update={"cache": cache})
        endpoints.append(endpoint)
    return config.model_copy(
        update={"models": models, "ledger": ledger, "auth": auth, "endpoints": endpoints}
    )


__all__ = ["FrugalConfig", "format_loc", "load_config", "parse_config"]
