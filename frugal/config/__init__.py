"""frugal.yaml: its schema, a module per group of sections, and loading that names the file and
field of every error (root.py)."""

from frugal.config.alerts import AlertsConfig, EndpointAlerts
from frugal.config.caching import CacheConfig, CaptureConfig, EarlyExpiryConfig, SemanticConfig
from frugal.config.controller import (
    BatchingControl,
    Bounds,
    CacheControl,
    ControllerConfig,
    DegradeControl,
)
from frugal.config.models import (
    BatchingConfig,
    InstanceConfig,
    ModelConfig,
    TensorSpec,
    UpstreamConfig,
)
from frugal.config.root import FrugalConfig, format_loc, load_config, parse_config
from frugal.config.routes import (
    GATE_SIGNALS,
    LLM_GATE_SIGNALS,
    LOCAL_GATE_SIGNALS,
    DriftConfig,
    EndpointConfig,
    GateConfig,
    LLMBudgetConfig,
    RollbackConfig,
    RouteConfig,
    RuleConfig,
    RuleWhen,
    ShadowConfig,
    TierConfig,
    WeightedModel,
    parse_comparison,
)
from frugal.config.scaling import AutoscalingConfig, PolicyName
from frugal.config.server import (
    AuthConfig,
    CorsConfig,
    LedgerConfig,
    PriorityConfig,
    ServerConfig,
    is_postgres_url,
    postgres_url_problem,
)

__all__ = [
    "GATE_SIGNALS",
    "LLM_GATE_SIGNALS",
    "LOCAL_GATE_SIGNALS",
    "AlertsConfig",
    "AuthConfig",
    "AutoscalingConfig",
    "BatchingConfig",
    "BatchingControl",
    "Bounds",
    "CacheConfig",
    "CacheControl",
    "CaptureConfig",
    "ControllerConfig",
    "CorsConfig",
    "DegradeControl",
    "DriftConfig",
    "EarlyExpiryConfig",
    "EndpointAlerts",
    "EndpointConfig",
    "FrugalConfig",
    "GateConfig",
    "InstanceConfig",
    "LLMBudgetConfig",
    "LedgerConfig",
    "ModelConfig",
    "PolicyName",
    "PriorityConfig",
    "RollbackConfig",
    "RouteConfig",
    "RuleConfig",
    "RuleWhen",
    "SemanticConfig",
    "ServerConfig",
    "ShadowConfig",
    "TensorSpec",
    "TierConfig",
    "UpstreamConfig",
    "WeightedModel",
    "format_loc",
    "is_postgres_url",
    "load_config",
    "parse_comparison",
    "parse_config",
    "postgres_url_problem",
]
