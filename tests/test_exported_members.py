"""Each package's ``__all__`` is what other folders may import: every name in it must exist."""

from __future__ import annotations

import importlib

import pytest

import frugal.errors

PACKAGES = [
    "frugal",
    "frugal.runtimes",
    "frugal.serving",
    "frugal.accounting",
    "frugal.routing",
    "frugal.observability",
    "frugal.errors",
    "frugal.config",
    "frugal.types",
    "frugal.access",
    "frugal.commands",
    "frugal.optimize",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    """Every name a package lists in ``__all__`` is defined there, once, and is public."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name}.__all__ is empty"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    missing = [member for member in exported if not hasattr(module, member)]
    assert missing == [], f"{name}.__all__ names what it does not define"
    assert all(not m.startswith("_") or m == "__version__" for m in exported)


@pytest.mark.parametrize("name", PACKAGES)
def test_star_import_gives_exactly_all(name: str) -> None:
    """``from <package> import *`` binds exactly the names in its ``__all__``."""
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(importlib.import_module(name).__all__)


def test_errors_are_pinned() -> None:
    """frugal.errors exports exactly the error tree drawn in its docstring, all FrugalErrors."""
    assert frugal.errors.__all__ == [
        "ArtifactError",
        "BudgetExceeded",
        "ConfigError",
        "Conflict",
        "DeadlineExceeded",
        "Forbidden",
        "FrugalError",
        "HeadersTooLarge",
        "InvalidInput",
        "MethodNotAllowed",
        "ModelFailed",
        "NotFound",
        "Overloaded",
        "PayloadTooLarge",
        "RateLimited",
        "RequestTimeout",
        "Unauthorized",
        "UnsupportedMediaType",
        "UpstreamFailed",
        "UpstreamTimeout",
    ]
    for name in frugal.errors.__all__:
        error = getattr(frugal.errors, name)
        assert issubclass(error, frugal.errors.FrugalError)
        assert name in (frugal.errors.__doc__ or ""), f"{name} is missing from the drawn tree"
    assert issubclass(frugal.errors.PayloadTooLarge, frugal.errors.InvalidInput)


def test_version_is_exported() -> None:
    """The top-level package exports its version string."""
    import frugal

    assert frugal.__all__ == ["__version__"]
    assert isinstance(frugal.__version__, str) and frugal.__version__
