"""The shape of the code: floors that import only downwards, no import cycles, no oversized modules, no module
reaching into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400

# The house, ground floor first. A module imports its own package and the floors below it; packages that
# share a floor never import each other (no stage imports another stage).
FLOORS: list[tuple[str, ...]] = [
    ("stages.contract",),  # the artifact contract: records, formats, readers, meta, metrics
    ("stages.runtime",),  # the run machinery: config, journal, stage runs, launch, outputs, logging
    ("stages.lm", "stages.engines", "stages.report"),  # model code, outside engines, reporting
    ("stages.sample", "stages.score", "stages.rank", "stages.train", "stages.plot", "stages.view"),  # the stages
    ("stages.eval",),  # composes sample and score through their entry points
    ("rrhf_cli",),  # the command line
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in ("rrhf_cli", "stages"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Project modules a file imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
            names.add(node.module)
    resolved = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != "stages":  # the bare `stages` package holds nothing but its docstring
            resolved.add(name)
    return resolved


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _place(module: str) -> tuple[int, str] | None:
    """(floor, package) of a module, or None for the bare `stages` package."""
    for level, packages in enumerate(FLOORS):
        for package in packages:
            if module == package or module.startswith(package + "."):
                return level, package
    return None


def test_every_module_has_a_floor():
    homeless = [name for name in MODULES if name != "stages" and _place(name) is None]
    assert not homeless, f"modules on no floor of FLOORS: {homeless}"


def test_imports_point_down_a_floor_or_stay_in_their_package():
    wrong = []
    for module, imported in GRAPH.items():
        here = _place(module)
        for target in imported:
            there = _place(target)
            if here is None or there is None or there[1] == here[1] or there[0] < here[0]:
                continue
            direction = "up" if there[0] > here[0] else "across"
            wrong.append(f"{module} -> {target} ({direction})")
    assert not wrong, wrong


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_module_is_oversized():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


# transformers keeps a model's attention implementation in `config._attn_implementation` and has no public getter
# (it documents reading it); writes go through the public `set_attn_implementation`. `os._exit` is public API.
FOREIGN_PRIVATE_READS = {"_attn_implementation", "_exit"}


def foreign_private_uses(source: str) -> list[str]:
    r"""`_name`s a module imports or reads off another object than its own instances.

    >>> foreign_private_uses("from a import _b\nx = other._c\nother._c = 1\nclass K:\n    def f(self): return self._d")
    ['1: from a import _b', '2: other._c', '3: other._c =']
    >>> foreign_private_uses("class K:\n    _e = 1\n    def f(self, k: 'K'): return K.load()._e")
    []
    """
    tree = ast.parse(source)
    own = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
        and isinstance(node.ctx, ast.Store)
    }
    own |= {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for stmt in node.body
        if isinstance(stmt, ast.Assign | ast.AnnAssign)
        for target in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}" + (" =" if isinstance(node.ctx, ast.Store) else ""))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_another_modules_private_names():
    found = {
        name: uses
        for name, path in MODULES.items()
        if (
            uses := [
                use
                for use in foreign_private_uses(path.read_text(encoding="utf-8"))
                if use.rpartition(".")[2] not in FOREIGN_PRIVATE_READS
            ]
        )
    }
    assert not found, found
