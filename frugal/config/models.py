"""frugal.yaml's `instance` and `models`: the machine paid for, and what runs on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    field_validator,
    model_validator,
)

from frugal.config._base import (
    RUNTIMES_NEEDING_SHA256,
    Datatype,
    RuntimeName,
    _FieldError,
    _Section,
)
from frugal.config.scaling import AutoscalingConfig


class InstanceConfig(_Section):
    """The machine being paid for: a catalog name, an explicit price, or both (price wins)."""

    type: str | None = None
    price_usd_per_hour: Annotated[float, Field(gt=0)] | None = Field(
        default=None, validation_alias=AliasChoices("price_usd_per_hour", "price_per_hour")
    )
    slots: Annotated[int, Field(ge=1)] | None = None  # default: the catalog's vCPUs (GPUs), else 1
    # The vCPUs the price buys, for pricing the server's own CPU: default the catalog's, else
    # this machine's CPU count.
    vcpus: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _type_or_price(self) -> InstanceConfig:
        if self.type is None and self.price_usd_per_hour is None:
            raise ValueError("give a catalog `type` (e.g. c7i.large) or `price_usd_per_hour`")
        return self


class TensorSpec(_Section):
    """One named input tensor; the first dimension of ``shape`` is the batch (-1 = any size)."""

    name: str
    datatype: Datatype = "FP32"
    shape: list[int] = Field(default_factory=lambda: [-1])

    @field_validator("shape")
    @classmethod
    def _dims(cls, shape: list[int]) -> list[int]:
        if not shape:
            raise ValueError("must have at least one dimension (the batch)")
        if any(d < -1 or d == 0 for d in shape):
            raise ValueError("dimensions are positive sizes or -1 for 'any'")
        return shape


class BatchingConfig(_Section):
    """How one model version's batcher gathers items; see docs/batching.md."""

    max_batch_size: Annotated[int, Field(ge=1)] = 32
    max_wait_ms: Annotated[float, Field(gt=0)] = 2.0
    max_queue: Annotated[int, Field(ge=1)] = 1024
    timeout_ms: Annotated[float, Field(gt=0)] = 10_000.0
    workers: Annotated[int, Field(ge=1)] = 1
    # An item that finds every worker idle waits this long for company (0: it runs at once).
    linger_ms: Annotated[float, Field(ge=0)] = 0.0
    # Refuse an item (503) when its expected wait x this passes its deadline: > 1 keeps more
    # margin, < 1 admits more; 0: admit by max_queue only.
    admit_wait_factor: Annotated[float, Field(ge=0, le=100)] = 1.0


class UpstreamConfig(_Section):
    """An OpenAI-compatible API that answers for a ``runtime: openai`` model (docs/llm.md).

    The key is read from the environment variable ``api_key_env`` at start-up, never from YAML.
    """

    base_url: str = Field(pattern=r"^https?://")  # e.g. https://api.openai.com/v1
    model: str = Field(min_length=1)  # the upstream's own model name
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    input_usd_per_1m: Annotated[float, Field(ge=0)] = 0.0  # per million prompt tokens
    output_usd_per_1m: Annotated[float, Field(ge=0)] = 0.0  # per million completion tokens
    timeout_s: Annotated[float, Field(gt=0)] = 60.0  # per attempt
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2  # on 429, 5xx and timeouts
    max_concurrency: Annotated[int, Field(ge=1)] = 64  # open upstream calls of this model


class ModelConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    runtime: RuntimeName
    path: Path | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    factory: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    inputs: list[TensorSpec] = Field(default_factory=list)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    options: dict[str, Any] = Field(default_factory=dict)  # runtime-specific, see docs/runtimes.md
    executor: Literal["thread", "process"] = "thread"  # process: for models that hold the GIL
    upstream: UpstreamConfig | None = None  # runtime openai: the API that answers
    # Replicas past one machine (`frugal serve --ray`) and `frugal simulate`: docs/autoscaling.md
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)

    @model_validator(mode="after")
    def _artifact(self) -> ModelConfig:
        if self.runtime == "openai":
            if self.upstream is None:
                raise _FieldError("upstream", "runtime openai needs an `upstream` section "
                                  "(base_url, model, api_key_env, prices)")  # fmt: skip
            for name in ("path", "sha256", "factory"):
                if getattr(self, name) is not None:
                    raise _FieldError(name, f"runtime openai calls an upstream API: remove "
                                      f"`{name}`")  # fmt: skip
            return self
        if self.upstream is not None:
            raise _FieldError("upstream", f"`upstream` is for runtime openai, not {self.runtime}")
        if self.runtime == "python":
            if self.factory is None:
                raise ValueError("runtime python needs `factory: module:callable`")
        elif self.factory is not None:
            raise ValueError(
                f"`factory` is for runtime python; runtime {self.runtime} loads `path`"
            )
        elif self.path is None:
            raise ValueError(f"runtime {self.runtime} needs `path` to the model file")
        if self.runtime in RUNTIMES_NEEDING_SHA256 and self.sha256 is None:
            raise ValueError(
                f"runtime {self.runtime} needs `sha256` of its file (frugal refuses to load "
                "an artifact it cannot verify; `sha256sum FILE` prints it)"
            )
        return self

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


__all__ = ["BatchingConfig", "InstanceConfig", "ModelConfig", "TensorSpec", "UpstreamConfig"]
