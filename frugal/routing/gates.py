"""A cascade tier's acceptance gate: keep this tier's answer, or send the item on.

Signals (``GateConfig``): the model's own confidence (max class probability), its margin
(top minus runner-up), or a user scorer ``module:function(inputs, outputs) -> scores`` called on
the tier's whole batch of items at once. An item without the signal (a model that gives no
confidence, a scorer returning None) is not accepted: it goes to the next tier. LLM tiers
(routing/llm_cascade.py) compute their own ``mean_logprob`` and judge it with ``passes``.
"""

from __future__ import annotations

import importlib
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from frugal.config import GateConfig
from frugal.errors import ConfigError
from frugal.types import Item, Prediction

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
Scorer = Callable[[Sequence[Item], Sequence[Prediction]], Sequence[float | None]]


class Gate:
    def __init__(self, config: GateConfig, *, field: str = "") -> None:
        self.config = config
        self.signal = config.signal
        op, self.threshold = config.comparison
        self.op = op
        self._compare = OPERATORS[op]
        self._scorer = load_scorer(config.scorer, field) if config.scorer else None

    def scores(
        self, items: Sequence[Item], predictions: Sequence[Prediction]
    ) -> list[float | None]:
        """The signal per item; calibration sweeps thresholds over exactly these numbers."""
        if self._scorer is not None:
            return self.call_scorer(items, predictions)
        if self.signal == "margin":
            return [_number(p.margin) for p in predictions]
        return [_number(p.confidence) for p in predictions]

    def call_scorer(self, inputs: Sequence[Any], outputs: Sequence[Any]) -> list[float | None]:
        """The user scorer on one batch: local items and predictions, or (LLM tiers) request
        payloads and completion bodies. One score per input, or ValueError."""
        if self._scorer is None:
            raise ValueError(f"this gate compares `{self.signal}`, it has no scorer")
        given = list(self._scorer(inputs, outputs))
        if len(given) != len(inputs):
            got, want = len(given), len(inputs)
            raise ValueError(f"scorer {self.config.scorer} gave {got} scores for {want} items")
        return [_number(s) for s in given]

    def accepts(self, items: Sequence[Item], predictions: Sequence[Prediction]) -> list[bool]:
        return [self.passes(s) for s in self.scores(items, predictions)]

    def passes(self, score: float | None) -> bool:
        """One score against the threshold; no score (None, NaN) is never accepted."""
        number = _number(score)
        return number is not None and self._compare(number, self.threshold)

    def with_threshold(self, threshold: float) -> Gate:
        """The same gate at another threshold (for calibration sweeps)."""
        text = f"{self.op} {threshold!r}"
        update = {"threshold" if self.signal == "scorer" else self.signal: text}
        return Gate(self.config.model_copy(update=update))


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def load_scorer(ref: str, field: str = "") -> Scorer:
    module_name, _, name = ref.partition(":")
    try:
        scorer = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import scorer {ref}: {exc}", field=field) from None
    if not callable(scorer):
        raise ConfigError(f"scorer {ref} is not callable", field=field)
    return scorer  # type: ignore[no-any-return]


__all__ = ["OPERATORS", "Gate", "Scorer", "load_scorer"]
