"""No import cycles among shoal's modules, counting imports inside functions
(issue 20): a module imported inside a function to dodge a cycle is still a
cycle in the design, only hidden from Python.

Imports under ``if TYPE_CHECKING:`` do not count (they never run).  ``from
package import submodule`` is an edge to the submodule, not to the package's
``__init__``.  The cycles still to be broken are listed in ``KNOWN``: a new
cycle, or a known one that grew, fails; a known one that was broken must be
taken off the list, so the list only shrinks.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "shoal"

# Cycles not yet broken (docs/design.md, issue 20).  Remove an entry once its
# cycle is gone; never add one.
KNOWN: list[frozenset[str]] = []


def module_files() -> dict[str, pathlib.Path]:
    files = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imports_of(module: str, path: pathlib.Path, modules: dict) -> set[str]:
    """The shoal modules ``module`` imports, anywhere in its code."""
    tree = ast.parse(path.read_text())
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.append(full if full in modules else base)
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("shoal") and name != module:
            found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


@functools.cache
def shoal_import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def test_the_graph_sees_function_level_imports_and_submodules():
    graph = shoal_import_graph()
    # object_ref imports ref_futures only inside functions
    assert "shoal.core.ref_futures" in graph["shoal.api.object_ref"]
    # "from shoal.node.object_store import spill_io" is an edge to spill_io only
    assert "shoal.node.object_store.spill_io" in graph["shoal.node.object_store.service"]
    assert "shoal.node.object_store" not in graph["shoal.node.object_store.service"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_new_import_cycle_and_none_grew():
    found = cycles(shoal_import_graph())
    unexpected = [sorted(c) for c in found if not any(c <= known for known in KNOWN)]
    assert not unexpected, f"new import cycles (break them; do not add to KNOWN): {unexpected}"


def test_broken_cycles_leave_the_known_list():
    found = cycles(shoal_import_graph())
    gone = [sorted(k) for k in KNOWN if not any(len(c & k) > 1 for c in found)]
    assert not gone, f"these cycles are broken now: take them off KNOWN: {gone}"
