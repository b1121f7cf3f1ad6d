"""shoal/shuffle is a library over the public API: no module in it may import
shoal.core, shoal.node, shoal.control or shoal.rpc, at module level or inside
a function, directly, relatively or by name through importlib."""

from __future__ import annotations

import ast
import os

import pytest

import shoal.shuffle

FORBIDDEN = ("shoal.core", "shoal.node", "shoal.control", "shoal.rpc")
PACKAGE_DIR = os.path.dirname(shoal.shuffle.__file__)


def _modules() -> list[str]:
    out = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        out += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    return sorted(out)


def _package_of(path: str) -> list[str]:
    rel = os.path.relpath(path, os.path.dirname(os.path.dirname(PACKAGE_DIR)))
    parts = rel[:-3].split(os.sep)
    return parts if parts[-1] == "__init__" else parts[:-1]


def imported_names(path: str) -> list[str]:
    """Every module name ``path`` imports, absolute, including ``from X import Y`` as
    ``X.Y`` (Y may be a module) and string arguments of import_module/__import__."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(path)
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = getattr(func, "attr", None) or getattr(func, "id", None)
            if called in ("import_module", "__import__") and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return names


def forbidden_in(names: list[str]) -> list[str]:
    return [n for n in names if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: os.path.relpath(p, PACKAGE_DIR))
def test_shuffle_modules_import_only_the_public_api(path):
    assert forbidden_in(imported_names(path)) == []


def test_the_check_sees_every_kind_of_import(tmp_path):
    sneaky = tmp_path / "shoal" / "shuffle" / "sneaky.py"
    sneaky.parent.mkdir(parents=True)
    sneaky.write_text(
        "import shoal.rpc.protocol\n"
        "from shoal import control\n"
        "def f():\n"
        "    from shoal.core.ids import object_id\n"
        "    import importlib\n"
        "    return importlib.import_module('shoal.node.agent')\n"
        "class C:\n"
        "    def g(self):\n"
        "        from ..core import context\n")
    global PACKAGE_DIR
    saved, PACKAGE_DIR = PACKAGE_DIR, str(sneaky.parent)
    try:
        found = forbidden_in(imported_names(str(sneaky)))
    finally:
        PACKAGE_DIR = saved
    assert found == ["shoal.rpc.protocol", "shoal.control", "shoal.core.ids",
                     "shoal.core.ids.object_id", "shoal.node.agent", "shoal.core",
                     "shoal.core.context"]


def test_there_are_modules_to_check():
    assert len(_modules()) >= 10
