"""Outcomes across a Ray call: what a model replica returns to the ingress, pickle-safe.

frugal's errors take keyword-only arguments (``Overloaded(retry_after_s=...)``), which
pickle cannot rebuild (it calls ``cls(*args)``): so an error travels as its class, message
and attributes, and is rebuilt without calling its constructor. Everything else in an
``ItemOutcome`` (``Prediction``, ``BatchStats``) is a plain frozen dataclass and pickles as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from frugal.errors import FrugalError
from frugal.types import ItemOutcome

WireError = tuple[type[FrugalError], tuple[Any, ...], dict[str, Any]]
WireOutcome = tuple[ItemOutcome, WireError | None]


def error_to_wire(error: FrugalError) -> WireError:
    return type(error), error.args, dict(vars(error))


def error_from_wire(wire: WireError) -> FrugalError:
    """The same error, rebuilt without its constructor (see the module docstring)."""
    cls, args, attributes = wire
    if not (isinstance(cls, type) and issubclass(cls, FrugalError)):
        raise TypeError(f"not a frugal error: {cls!r}")
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    vars(error).update(attributes)
    return error


def outcomes_to_wire(outcomes: Sequence[ItemOutcome]) -> list[WireOutcome]:
    return [
        (dataclasses.replace(o, error=None), error_to_wire(o.error) if o.error else None)
        for o in outcomes
    ]


def outcomes_from_wire(wire: Sequence[WireOutcome]) -> list[ItemOutcome]:
    return [
        dataclasses.replace(o, error=error_from_wire(e)) if e is not None else o for o, e in wire
    ]


__all__ = [
    "WireError",
    "WireOutcome",
    "error_from_wire",
    "error_to_wire",
    "outcomes_from_wire",
    "outcomes_to_wire",
]
