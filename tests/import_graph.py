"""The project's import graph, read from the source (ast), not from what happens to be importable.

Every ``import`` and ``from ... import`` statement counts wherever it stands: at module level, inside a
function, or under ``if TYPE_CHECKING:``. A lazy or type-checking import hides a cycle from the
interpreter, not from this graph.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

Graph = Mapping[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    """``ca/issue.py`` -> ``ca.issue``; ``ca/__init__.py`` -> ``ca``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name a module's import statements name (relative imports resolved)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
    return names


def external_imports(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Each project module -> every dotted name it imports (project or not)."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found[module] = imported_names(tree, module, path.name == "__init__.py")
    return found


def module_graph(imports: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (a name resolves to the longest module it starts with)."""
    modules = set(imports)
    graph: dict[str, set[str]] = {}
    for module, names in imports.items():
        targets = set()
        for name in names:
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    targets.add(candidate)
                    break
        targets.discard(module)
        # a package's own __init__ is not an arrow into it from its modules
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    return graph


def package_of(module: str, depth: int = 1) -> str:
    return ".".join(module.split(".")[:depth])


def package_graph(graph: Graph, depth: int = 1) -> dict[str, set[str]]:
    """The graph between packages (the first ``depth`` levels of each module's name)."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = package_of(module, depth)
        packages.setdefault(source, set()).update(
            package_of(t, depth) for t in targets if package_of(t, depth) != source
        )
    return packages


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None: an iterative depth-first search."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = [start]
        stack = [iter(sorted(graph.get(start, ())))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(step) == 1:
                return path[path.index(step) :] + [step]
            elif not state.get(step):
                state[step] = 1
                path.append(step)
                stack.append(iter(sorted(graph.get(step, ()))))
    return None
