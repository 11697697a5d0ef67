"""The student spec of ``frugal distill``: which small model to train on the teacher's answers.

    kind: sklearn                  # or text: a small torch head on MiniLM sentence embeddings
    estimator: LogisticRegression  # sklearn: one of ESTIMATORS
    params: {C: 1.0, max_iter: 500}
    targets: soft                  # soft (default) or hard; see docs/distill.md
    seed: 0

Only allow-listed estimators and parameters are accepted: each one converts to ONNX with
skl2onnx, answers class probabilities (so the cascade gate has a confidence to read) and takes
``sample_weight`` (how soft labels are trained, see distill_train.py). Every error names the file
and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugal.errors import InvalidInput

KINDS = ("sklearn", "text")
TARGETS = ("soft", "hard")
# estimator -> (module, the parameters a spec may set). Each converts with skl2onnx, has
# predict_proba and fits with sample_weight.
ESTIMATORS: dict[str, tuple[str, frozenset[str]]] = {
    "LogisticRegression": (
        "sklearn.linear_model",
        frozenset({"C", "max_iter", "tol", "fit_intercept", "l1_ratio", "solver"}),
    ),
    "DecisionTreeClassifier": (
        "sklearn.tree",
        frozenset(
            {"max_depth", "min_samples_leaf", "min_samples_split", "max_leaf_nodes", "criterion"}
        ),
    ),
    "RandomForestClassifier": (
        "sklearn.ensemble",
        frozenset({"n_estimators", "max_depth", "min_samples_leaf", "max_features"}),
    ),
    "GaussianNB": ("sklearn.naive_bayes", frozenset({"var_smoothing"})),
    "MLPClassifier": (
        "sklearn.neural_network",
        frozenset(
            {
                "hidden_layer_sizes",
                "alpha",
                "max_iter",
                "learning_rate_init",
                "tol",
                "early_stopping",
            }
        ),
    ),
}
TEXT_PARAMS = frozenset({"hidden", "epochs", "learning_rate", "batch_size"})
TEXT_DEFAULTS: dict[str, Any] = {
    "hidden": 0,
    "epochs": 200,
    "learning_rate": 0.01,
    "batch_size": 64,
}
_KEYS = frozenset({"kind", "estimator", "params", "targets", "seed"})


@dataclass(frozen=True, slots=True)
class StudentSpec:
    """What to train: the kind, the estimator (sklearn) and its parameters, targets and seed."""

    kind: str
    estimator: str | None
    params: dict[str, Any] = field(default_factory=dict)
    targets: str = "soft"
    seed: int = 0

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "estimator": self.estimator,
            "params": self.params,
            "targets": self.targets,
            "seed": self.seed,
        }


def load_spec(path: Path) -> StudentSpec:
    """Read and check a student spec YAML; errors name ``--student-spec``, the file and field."""
    import yaml

    if not path.is_file():
        raise InvalidInput(
            f"--student-spec {path}: file not found",
            field="--student-spec",
            hint="a YAML file such as: {kind: sklearn, estimator: LogisticRegression}",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: not readable YAML: {exc}", field="--student-spec") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: must be a mapping with `kind`", field="--student-spec")
    return parse_spec(data, str(path))


def parse_spec(data: dict[str, Any], where: str = "student spec") -> StudentSpec:
    """The spec from a mapping (``where`` prefixes every error)."""
    unknown = sorted(str(k) for k in set(data) - _KEYS)
    if unknown:
        raise _error(where, unknown[0], f"unknown key (keys: {', '.join(sorted(_KEYS))})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise _error(where, "kind", f"{kind!r}: choose {' or '.join(KINDS)}")
    targets = data.get("targets", "soft")
    if targets not in TARGETS:
        raise _error(where, "targets", f"{targets!r}: choose soft or hard")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _error(where, "seed", f"{seed!r}: a whole number >= 0")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise _error(where, "params", "a mapping of parameter names to values")
    estimator = data.get("estimator")
    if kind == "sklearn":
        if estimator not in ESTIMATORS:
            raise _error(
                where, "estimator", f"{estimator!r}: choose one of {', '.join(ESTIMATORS)}"
            )
        allowed = ESTIMATORS[estimator][1]
    else:
        if estimator is not None:
            raise _error(where, "estimator", "kind text trains its own torch head; remove it")
        allowed = TEXT_PARAMS
        params = {**TEXT_DEFAULTS, **params}
    for name in sorted(str(k) for k in params):
        if name not in allowed:
            raise _error(
                where, f"params.{name}", f"not allowed (allowed: {', '.join(sorted(allowed))})"
            )
    return StudentSpec(
        kind=kind, estimator=estimator, params=dict(params), targets=targets, seed=seed
    )


def make_estimator(spec: StudentSpec) -> Any:
    """A fresh, unfitted scikit-learn estimator of the spec, seeded where it takes a seed."""
    import importlib
    import inspect

    assert spec.estimator is not None
    module, _ = ESTIMATORS[spec.estimator]
    cls = getattr(importlib.import_module(module), spec.estimator)
    params = dict(spec.params)
    if "random_state" in inspect.signature(cls).parameters:
        params["random_state"] = spec.seed
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        estimator = cls(**params)
        estimator._validate_params()
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"student spec params: {exc}", field="params", hint="see scikit-learn's docs for it"
        ) from None
    return estimator


def _error(where: str, field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{where}: {field}: {message}", field=field)


__all__ = [
    "ESTIMATORS",
    "KINDS",
    "TARGETS",
    "TEXT_DEFAULTS",
    "StudentSpec",
    "load_spec",
    "make_estimator",
    "parse_spec",
]
