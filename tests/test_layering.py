"""host/mote has no import cycle: not between modules, and not between its packages
(format, quant, reference, eval, boards, ...), counting imports inside functions too,
since a function-local import only hides a cycle until run time."""

from __future__ import annotations

import ast
from pathlib import Path

import mote

ROOT = Path(mote.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The mote modules `path` imports anywhere in its text."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: imports_of(p, set(files)) - {m} for m, p in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_module_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_no_package_cycle():
    packages: dict[str, set[str]] = {}
    for m, deps in graph().items():
        packages.setdefault(package_of(m), set()).update(package_of(d) for d in deps)
    for p, deps in packages.items():
        deps.discard(p)
        deps.discard("mote")  # mote/__init__.py: the version string only
    cycle = find_cycle(packages)
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
