"""Any Python object with ``predict_batch``, built by a ``module:callable`` factory.

The factory gets the model's ``options`` as keyword arguments. Its object may return
``Prediction`` records or plain values (taken as predictions without confidence).

A module whose file ``path`` names is loaded from the bytes that were hashed: read once, checked
against ``sha256``, compiled and run into a fresh module. ``importlib`` would instead look for
``__pycache__/*.pyc`` first and trust one whose header carries the source's size and mtime,
which anyone who can write that folder can forge, so the pin would check one file and run
another.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from frugal.config import ModelConfig
from frugal.errors import ArtifactError
from frugal.types import Item, ModelRef, Prediction

_PINNED = "__frugal_sha256__"  # marks a module this runtime loaded from verified bytes


class PythonModel:
    def __init__(self, ref: ModelRef, target: Any) -> None:
        self.ref = ref
        self.target = target
        if hasattr(target, "item_size"):
            self.item_size = target.item_size

    def predict_batch(self, items: Sequence[Item]) -> list[Prediction]:
        out = self.target.predict_batch(items)
        if len(out) != len(items):
            raise RuntimeError(f"predict_batch returned {len(out)} answers for {len(items)} items")
        return [p if isinstance(p, Prediction) else Prediction(p) for p in out]


def load(config: ModelConfig) -> PythonModel:
    assert config.factory is not None  # config validation guarantees it
    module_name, _, attr = config.factory.partition(":")
    path = config.path
    if config.sha256 is not None and (path is None or not path.is_file()):
        raise ArtifactError(
            f"model {config.key}: `sha256` pins one file, but `path` "
            + ("is not set" if path is None else f"is not a file: {path}"),
            hint="set `path` to the module's .py file (a folder's contents cannot be pinned)",
        )
    if path is not None and not path.exists():
        raise ArtifactError(f"model {config.key}: path not found: {path}")
    if path is not None and path.is_file() and module_name != path.stem:
        raise ArtifactError(
            f"model {config.key}: `factory` names module {module_name!r}, but `path` is the "
            f"file of module {path.stem!r}",
            hint=f"write `factory: {path.stem}:<callable>`, or point `path` at {module_name}.py",
        )
    if path is not None:
        folder = path.parent if path.is_file() else path
        # Its siblings stay importable (helpers the module imports); they are not pinned.
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        if path is not None and path.is_file():
            module = _load_file(config, path, module_name)
        else:
            module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise ArtifactError(f"model {config.key}: cannot import {config.factory}: {exc}") from exc
    except ArtifactError:
        raise
    except Exception as exc:  # user code ran at import: any failure means the model did not load
        raise ArtifactError(f"model {config.key}: importing {module_name} raised {exc!r}") from exc
    try:
        target = factory(**config.options)
    except Exception as exc:  # user code: any failure means the model did not load
        raise ArtifactError(f"model {config.key}: {config.factory} raised {exc!r}") from exc
    if not callable(getattr(target, "predict_batch", None)):
        raise ArtifactError(f"model {config.key}: {config.factory} returned no predict_batch()")
    return PythonModel(ModelRef(config.name, config.version, config.sha256), target)


def _load_file(config: ModelConfig, path: Path, module_name: str) -> ModuleType:
    """The module in ``path``, run from the one read of its bytes that was hashed."""
    existing = sys.modules.get(module_name)
    if existing is not None and not hasattr(existing, _PINNED):
        raise ArtifactError(
            f"model {config.key}: a module named {module_name!r} is already imported "
            f"({getattr(existing, '__file__', None) or 'built in'})",
            hint="rename the model's file so its module name is its own",
        )
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"model {config.key}: cannot read {path}: {exc.strerror}") from None
    digest = hashlib.sha256(source).hexdigest()
    if config.sha256 is not None and digest != config.sha256.lower():
        raise ArtifactError(
            f"model {config.key}: sha256 mismatch for {path}: "
            f"config says {config.sha256}, file is {digest}",
            hint="the file changed since the config was written; if that is intended, "
            "put the new sha256 in frugal.yaml",
        )
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        raise ArtifactError(f"model {config.key}: {path} does not compile: {exc}") from None
    spec = importlib.util.spec_from_loader(module_name, loader=None, origin=str(path))
    assert spec is not None  # spec_from_loader only returns None for a loader it cannot ask
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    setattr(module, _PINNED, digest)
    # Registered before it runs, as import does: its classes pickle by module name, and a
    # module that imports itself (or dataclasses resolving annotations) finds this one.
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        if sys.modules.get(module_name) is module:
            del sys.modules[module_name]
        raise
    return module
