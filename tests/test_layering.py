"""The import graph holds to the layering of DESIGN.md and STYLE.md, read from the source.

Every module under ``frugal/`` is parsed with ``ast``, never imported (so a missing optional extra
hides nothing), and every import in it is collected: at the top, inside functions (the lazy imports
of optional extras) and under ``if TYPE_CHECKING:``. TYPE_CHECKING-only imports count: the code's
meaning still depends on what they name, so they keep to the same layers (today's two, in
serving/routes.py and optimize/tier_runs.py, stay inside their own package). Imports made from
a string (``importlib.import_module``: the runtime loader picking ``frugal.runtimes.<name>``, user
factories named in frugal.yaml) are not seen; none of them crosses a layer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "frugal"


@dataclass(frozen=True)
class Names:
    """Names given by what they are, or (``but``) as every frugal part they leave out."""

    names: frozenset[str]
    but: bool = False

    def __contains__(self, name: object) -> bool:
        if self.but:  # only ever frugal's own parts: "anything of frugal but ..."
            return isinstance(name, str) and is_frugal(name) and name not in self.names
        return name in self.names

    def __str__(self) -> str:
        listed = ", ".join(sorted(self.names))
        if self.but:
            return f"anything of frugal but {listed}" if listed else "anything of frugal"
        return listed


def only(*parts: str) -> Names:
    """Parts of frugal by their short names: ``only("serving")`` is frugal.serving."""
    return Names(frozenset(f"frugal.{p}" for p in parts))


def all_but(*parts: str) -> Names:
    """Every part of frugal (the package root too) except these."""
    return Names(frozenset(f"frugal.{p}" for p in parts), but=True)


def third_party(*modules: str) -> Names:
    return Names(frozenset(modules))


def is_frugal(name: str) -> bool:
    return name == "frugal" or name.startswith("frugal.")


@dataclass(frozen=True)
class Rule:
    importers: Names  # top-level parts of frugal/: frugal.serving, frugal.demo, ...
    imports: Names  # what they must not import: parts of frugal, or third-party top modules
    why: str


# DESIGN.md: cli/commands -> serving -> cache, routing, accounting, runtimes, observability ->
# config, errors; access, optimize and plots sit beside the middle row. scale/ (STYLE.md: `cli`,
# `scale` -> `serving`) sits beside the command line, above serving.
TOP = ("cli", "commands", "__main__")
BELOW_SERVING = ("access", "accounting", "cache", "config", "errors", "observability", "optimize",
                 "plots", "routing", "runtimes", "types")  # fmt: skip

# fmt: off
RULES = (
    #    who imports                           must not import
    Rule(all_but("serving", "demo", "scale", *TOP), only("serving"),
         "only the command line, scale-out and the demo sit above serving"),
    Rule(all_but("scale", *TOP),               only("scale"),
         "scale-out sits beside the command line: only it and the command line use it"),
    Rule(all_but(*TOP),                        only("cli", "commands"),
         "the command line is the top: nothing imports it back"),
    Rule(only("runtimes"),                     only("cache", "routing", "accounting", "serving",
                                                    "observability"),
         "a runtime only runs a model; the stages around it call it"),
    Rule(only("errors"),                       all_but(),
         "errors are the bottom"),
    Rule(only("edge"),                         all_but(),
         "the edge runner ships alone in a bundle: numpy and onnxruntime, nothing of frugal"),
    Rule(only("edge"),                         third_party("pydantic", "httpx", "click", "yaml",
                                                           "orjson", "rich", "sklearn"),
         "the edge runner ships alone in a bundle: numpy and onnxruntime, nothing of frugal"),
    Rule(only("types"),                        all_but("errors"),
         "types sit on errors alone"),
    Rule(only("config"),                       all_but("errors"),
         "config sits on errors alone"),
    Rule(all_but("serving"),                   third_party("starlette", "uvicorn"),
         "only serving speaks HTTP, so the core runs without it (STYLE.md)"),
)
# fmt: on

# (importing file, imported module) pairs that break a rule today, each with the issue that
# removes it. Empty: today's tree holds to every rule. A new pair fails the test.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository, e.g. "frugal/serving/app.py"
    line: int
    importer: str  # the top-level part of frugal/ the file belongs to, e.g. "frugal.serving"
    module: str  # the imported module, e.g. "frugal.accounting.ledger" or "starlette.routing"

    @property
    def target(self) -> str:
        """What the rules speak of: frugal's top-level part, or a third-party top module."""
        parts = self.module.split(".")
        return ".".join(parts[:2]) if parts[0] == "frugal" else parts[0]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(path: Path, root: Path) -> Iterator[Import]:
    """Every import statement in one file, wherever it is written, resolved to a module name."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts = name.split(".")
    importer = ".".join(parts[:2])
    file = str(path.relative_to(root.parent))
    members = {p.stem for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    for node in ast.walk(ast.parse(path.read_text(), filename=file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, importer, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's package, up level - 1 packages
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module == root.name:  # `from frugal import serving` imports frugal.serving
                for alias in node.names:
                    named = alias.name if alias.name in members else None
                    yield Import(file, node.lineno, importer,
                                 f"{module}.{named}" if named else module)  # fmt: skip
            else:
                yield Import(file, node.lineno, importer, module)


def imports_under(root: Path) -> list[Import]:
    return [found for path in sorted(root.rglob("*.py")) for found in imports_in(path, root)]


def violations(imports: Iterable[Import], rules: Iterable[Rule]) -> list[tuple[Import, Rule]]:
    return [(found, rule) for found in imports for rule in rules
            if found.importer in rule.importers and found.target in rule.imports
            and found.target != found.importer]  # fmt: skip


def describe(found: Import, rule: Rule) -> str:
    return (f"{found.file}:{found.line}: {found.importer} imports {found.module}: {rule.why} "
            f"(rule: {rule.importers} must not import {rule.imports})")  # fmt: skip


def test_the_import_graph_holds_to_the_layering() -> None:
    """No module under frugal/ imports across a layer, save the pairs listed as known."""
    imports = imports_under(SOURCE)
    broken = [(found, rule) for found, rule in violations(imports, RULES)
              if (found.file, found.module) not in KNOWN_EXCEPTIONS]  # fmt: skip
    if broken:
        pytest.fail("imports against DESIGN.md's layering:\n" + "\n".join(
            describe(found, rule) for found, rule in broken), pytrace=False)  # fmt: skip
    seen = {(found.file, found.module) for found in imports}
    assert KNOWN_EXCEPTIONS <= seen, f"fixed, drop from KNOWN_EXCEPTIONS: {KNOWN_EXCEPTIONS - seen}"


def test_every_layer_the_rules_name_exists() -> None:
    """A renamed or moved package would leave its rule guarding nothing; each named part exists,
    and the graph read from the source has the edges the design draws."""
    parts = {f"frugal.{p.stem}" for p in SOURCE.iterdir()
             if p.suffix == ".py" or (p / "__init__.py").exists()}  # fmt: skip
    named = {n for rule in RULES for n in rule.importers.names | rule.imports.names if is_frugal(n)}
    assert named <= parts, named - parts
    assert {f"frugal.{p}" for p in (*BELOW_SERVING, *TOP)} <= parts
    edges = {(found.importer, found.target) for found in imports_under(SOURCE)}
    assert {
        ("frugal.serving", "frugal.accounting"),
        ("frugal.serving", "starlette"),
        ("frugal.commands", "frugal.serving"),
        ("frugal.config", "frugal.errors"),
    } <= edges


def plant(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in [path.parent, *path.parent.parents]:
        if folder == root.parent:
            break
        (folder / "__init__.py").touch()
    path.write_text(source)


def test_imports_are_found_in_functions_type_checking_blocks_and_relative_forms(
    tmp_path: Path,
) -> None:
    """Lazy, TYPE_CHECKING-only, relative and ``from frugal import x`` imports are all seen,
    each resolved to the module it names, with its line."""
    root = tmp_path / "frugal"
    plant(root, "serving/app.py", "")
    plant(root, "runtimes/model.py", "\n".join([
        "from typing import TYPE_CHECKING",
        "if TYPE_CHECKING:",
        "    from frugal.cache.store import CacheStore",
        "def load() -> None:",
        "    import frugal.routing.gates",
        "from . import base",
        "from ..accounting import prices",
        "from frugal import serving, __version__",
    ]))  # fmt: skip
    found = {(i.line, i.module) for i in imports_under(root) if i.file.endswith("model.py")}
    assert found == {(1, "typing"), (3, "frugal.cache.store"), (5, "frugal.routing.gates"),
                     (6, "frugal.runtimes"), (7, "frugal.accounting"), (8, "frugal.serving"),
                     (8, "frugal")}  # fmt: skip


@pytest.mark.parametrize(
    ("relative", "source", "says"),
    [
        ("cache/store.py", "import frugal.serving.app", "frugal.cache imports frugal.serving.app"),
        (
            "runtimes/x.py",
            "def f():\n    from frugal.accounting import ledger",
            "frugal/runtimes/x.py:2: frugal.runtimes imports frugal.accounting",
        ),
        ("types.py", "from frugal.config import Loaded", "frugal.types imports frugal.config"),
        ("config/__init__.py", "from frugal import types", "frugal.config imports frugal.types"),
        ("errors.py", "import frugal", "frugal.errors imports frugal: errors are the bottom"),
        (
            "routing/cascade.py",
            "from starlette.requests import Request",
            "frugal.routing imports starlette.requests",
        ),
        ("serving/app.py", "from frugal.commands import x", "frugal.serving imports frugal.com"),
    ],
)
def test_each_rule_catches_a_planted_import(
    tmp_path: Path, relative: str, source: str, says: str
) -> None:
    """An import against a rule, planted in a copy of the layout, is named with file and line."""
    root = tmp_path / "frugal"
    for part in ("cli.py", "commands/serve.py", "demo.py", "serving/app.py", "types.py"):
        plant(root, part, "")
    plant(root, relative, source)
    (message,) = [describe(*v) for v in violations(imports_under(root), RULES)]
    assert says in message
