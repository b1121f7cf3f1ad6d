"""The code base stays ruff-clean (the repo's pyproject configuration)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(120)
def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    paths = [p for p in ("shoal", "tests", "bench") if os.path.isdir(os.path.join(ROOT, p))]
    out = subprocess.run([ruff, "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-5000:]


def test_module_sizes_stay_readable():
    """No module grows past ~800 lines without a reason (STYLE.md)."""
    too_long = []
    for folder, _, files in os.walk(os.path.join(ROOT, "shoal")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    lines = sum(1 for _ in f)
                if lines > 800:
                    too_long.append(f"{os.path.relpath(path, ROOT)}: {lines} lines")
    assert not too_long, too_long


def test_core_does_not_import_node():
    """Drivers and workers (shoal/core) share only shoal/objects with the node agent."""
    import ast

    offenders = []
    folder = os.path.join(ROOT, "shoal", "core")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{name}: {m}" for m in modules if m.startswith("shoal.node")]
    assert not offenders, offenders


def test_core_parts_do_not_reach_through_the_worker():
    """A core part is given what it uses at construction (core/links.py, issue 20):
    no ``self.worker.<part>.<name>`` chains in shoal/core."""
    import re

    chain = re.compile(r"self\.worker\.[a-z_]+\.[a-z_]")
    offenders = []
    folder = os.path.join(ROOT, "shoal", "core")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as f:
                offenders += [f"{name}:{i}: {line.strip()}" for i, line in enumerate(f, 1)
                              if chain.search(line)]
    assert not offenders, offenders
