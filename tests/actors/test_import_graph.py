"""The cloud domain's modules import each other in one direction: no cycle, and only the
façades' module imports the Fleet."""

from __future__ import annotations

import ast
from pathlib import Path

import stateward.actors

PACKAGE = "stateward.actors"
FOLDER = Path(next(iter(stateward.actors.__path__)))


def imports_of(path: Path) -> set[str]:
    """The stateward.actors modules ``path`` imports, TYPE_CHECKING imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module or ""
                names = [base] if base else [alias.name for alias in node.names]
                found.update(f"{PACKAGE}.{name}" for name in names)
            elif node.module is not None and node.module.startswith(f"{PACKAGE}."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(f"{PACKAGE}."))
    return found


def graph() -> dict[str, set[str]]:
    """Each module of stateward.actors (``__init__`` aside) and the modules it imports."""
    return {
        f"{PACKAGE}.{path.stem}": imports_of(path)
        for path in sorted(FOLDER.glob("*.py"))
        if path.stem != "__init__"
    }


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``edges``, as the modules along it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(edges.get(module, ())):
            found = visit(target)
            if found is not None:
                return found
        path.pop()
        done.add(module)
        return None

    for module in sorted(edges):
        found = visit(module)
        if found is not None:
            return found
    return None


def test_the_domain_modules_import_each_other_without_a_cycle() -> None:
    """The import graph of stateward.actors' modules (every import, TYPE_CHECKING ones
    too) has no cycle."""
    edges = graph()
    assert f"{PACKAGE}._fleet" in edges
    assert cycle(edges) is None


def test_only_the_facades_import_the_fleet() -> None:
    """No module of the domain imports the Fleet's module but the package's own
    ``__init__``: the actors and the steps see the fleet through FleetServices."""
    importers = sorted(m for m, targets in graph().items() if f"{PACKAGE}._fleet" in targets)
    assert importers == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a two-module cycle is found, a chain is not."""
    assert cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
