"""How an LLM tier's answer is judged against a reference, for calibrating LLM cascades.

A labeled JSONL row gives a prompt and its ``reference``; the grader says whether an answer is
right. Built in: ``exact`` (equal once surrounding whitespace is trimmed and case folded) and
``regex`` (the row's reference is a regular expression that must match somewhere in the
answer: ``(?i)\\bparis\\b``). Anything else is ``module:function``, called as
``function(answer, reference, row) -> bool`` with the row's whole JSON object, importable from
the working directory (as scorers are).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from frugal.errors import InvalidInput

Grader = Callable[[str, Any, dict[str, Any]], bool]
GRADER_HELP = "exact, regex, or module:function(answer, reference, row) -> bool"


def exact(answer: str, reference: Any, row: dict[str, Any]) -> bool:
    return answer.strip().casefold() == str(reference).strip().casefold()


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def regex(answer: str, reference: Any, row: dict[str, Any]) -> bool:
    try:
        return _compiled(str(reference)).search(answer) is not None
    except re.error as exc:
        raise InvalidInput(f"reference {reference!r} is not a regular expression: {exc}",
                           field="reference") from None  # fmt: skip


BUILT_IN: dict[str, Grader] = {"exact": exact, "regex": regex}


def load_grader(spec: str) -> Grader:
    """A built-in grader by name, or a user function named ``module:function``."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise InvalidInput(f"--grader {spec!r}: give {GRADER_HELP}", field="--grader")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidInput(
            f"--grader {spec}: cannot import it: {exc}", field="--grader",
            hint="the module must be importable here (check PYTHONPATH)",
        ) from None  # fmt: skip
    if not callable(found):
        raise InvalidInput(f"--grader {spec} is not callable", field="--grader")
    grader: Grader = found
    return grader


__all__ = ["BUILT_IN", "GRADER_HELP", "Grader", "exact", "load_grader", "regex"]
