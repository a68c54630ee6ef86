"""The shape of the code: which package may import which, no import cycles, no oversized modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("sample", "score", "rank", "train", "eval", "plot")
SHARED = ("lm", "engines")
MAX_LINES = 400


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
        if name and not MODULES[name].name == "__init__.py":
            resolved.add(name)
    return resolved


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "stages" and len(parts) > 2 else None


def test_no_stage_imports_another_stage():
    crossings = []
    for module, imported in GRAPH.items():
        own = _package(module)
        for target in imported:
            other = _package(target)
            if own is None or other is None or other == own or other in SHARED:
                continue
            # eval composes sample and score through their entry points only.
            if own == "eval" and other in ("sample", "score") and target.rsplit(".", 1)[1] in ("run", "config"):
                continue
            crossings.append(f"{module} -> {target}")
    assert not crossings, crossings


def test_shared_packages_import_no_stage():
    bad = [
        f"{module} -> {target}"
        for module, imported in GRAPH.items()
        if _package(module) in SHARED
        for target in imported
        if _package(target) in STAGES
    ]
    assert not bad, bad


def test_the_artifact_contract_imports_no_stage_code():
    bad = [
        f"{module} -> {target}"
        for module, imported in GRAPH.items()
        if module.startswith("rrhf_cli.") and not module.startswith("rrhf_cli.commands")
        for target in imported
        if target.startswith("stages")
    ]
    assert not bad, bad


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
