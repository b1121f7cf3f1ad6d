"""Object spilling options of a node process, and cleaning up after a killed one.

A node spills to ``ROOT/shoal-spill-PID-NODE`` under each spilling directory
root (default: the session folder) and removes those folders when it stops;
its starter removes them when it had to kill it.
"""

from __future__ import annotations

import os

from shoal.objects.spill_folders import remove_node_folders


def spilling_options(directory: str | list[str] | None, threshold: float | None,
                     min_size: int | None) -> list[str]:
    """``shoal.node.main`` arguments for object spilling (None: the default)."""
    cmd = []
    for folder in [directory] if isinstance(directory, str) else directory or []:
        cmd += ["--object-spilling-directory", os.path.abspath(folder)]
    if threshold is not None:
        cmd += ["--object-spilling-threshold", str(float(threshold))]
    if min_size is not None:
        cmd += ["--min-spilling-size", str(int(min_size))]
    return cmd


def preload_options(modules: list[str] | tuple | None) -> list[str]:
    """``shoal.node.main`` arguments: modules every worker of the node imports when it
    starts (Ray's ``_system_config["preload_python_modules"]``)."""
    if modules is None:
        return []
    if isinstance(modules, str) or not all(isinstance(m, str) and m for m in modules):
        raise TypeError(f"preload_python_modules must be a list of module names, got "
                        f"{modules!r}")
    return ["--preload-python-modules", ",".join(modules)] if modules else []


def remove_spill_dirs(folders: list[str]) -> None:
    """A killed node could not remove its spill folders itself."""
    remove_node_folders(folders)
