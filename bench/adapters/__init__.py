"""One adapter per system, all with the same small interface.

``init()``/``shutdown()`` start and stop a local cluster with two CPUs;
``remote(fn, **options)`` and ``actor(cls, **options)`` return objects with
Ray's ``.remote(...)``/``.options(...)``; ``get``, ``put``, ``put_many`` and
``wait`` work on refs.  Code running inside a task or actor finds the adapter of
its system with ``current()`` (the driver exports ``BENCH_SYSTEM``).
"""

from __future__ import annotations

import importlib
import os

SYSTEMS = ("shoal", "ray", "dask")
_MODULES = {"shoal": "shoal_adapter", "ray": "ray_adapter", "dask": "dask_adapter"}
IMPORTS = {"shoal": "shoal", "ray": "ray", "dask": "distributed"}  # module that must import
# Ray and Dask are never shoal's dependencies: each lives in its own virtualenv, and its
# rows run under that interpreter (override with BENCH_RAY_PYTHON / BENCH_DASK_PYTHON).
PEER_PYTHONS = {"ray": "/tmp/ray-venv/bin/python", "dask": "/tmp/dask-venv/bin/python"}
_current = None


def peer_python(system: str) -> str | None:
    """The interpreter of ``system``'s own virtualenv, if there is one."""
    default = PEER_PYTHONS.get(system)
    path = os.environ.get(f"BENCH_{system.upper()}_PYTHON", default)
    return path if path and os.path.exists(path) else None


class NotSupported(Exception):
    """The system has no equivalent of the requested feature."""


def make(system: str):
    module = importlib.import_module(f"bench.adapters.{_MODULES[system]}")
    return module.Adapter()


def current():
    """The adapter of this process's system (driver, task or actor)."""
    global _current
    if _current is None:
        _current = make(os.environ["BENCH_SYSTEM"])
    return _current


def set_current(adapter) -> None:
    global _current
    _current = adapter
