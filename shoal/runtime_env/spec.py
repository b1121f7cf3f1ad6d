"""Runtime environments as data: checking, merging and hashing (pure, no I/O).

A user's ``runtime_env`` dict becomes, on the submitting side, a *resolved*
env: local directories replaced by the content hash of their zip (uploaded to
the control store, see :mod:`packaging`), ``pip`` normalised to a sorted list.
The resolved env's :func:`env_hash` keys everything downstream: the lease
(tasks with different envs never share a worker), the node's caches (one
unpacked package or virtualenv per hash) and the worker pool (a worker serves
only the env it was started in).

Merging (Ray's rule): a child (a task or actor's own ``runtime_env``) replaces
each field of its parent's (the job's, or the submitting task's), except
``env_vars``, which are merged key by key, the child winning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from shoal.exceptions import RuntimeEnvSetupError

# the fields shoal runs; the others Ray knows are refused with a clear error
SUPPORTED = ("env_vars", "working_dir", "py_modules", "pip", "excludes", "config")
KNOWN_UNSUPPORTED = ("conda", "container", "image_uri", "uv", "py_executable", "nsight",
                     "worker_process_setup_hook", "java_jars", "rocprof_sys")
PACKAGE_PREFIX = "pkg://"  # a directory shipped through the control store: pkg://<hash>


def check(runtime_env: Any, where: str = "runtime_env") -> dict:
    """The env as a plain dict, or TypeError/ValueError naming what is wrong."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(runtime_env).__name__}")
    env = dict(runtime_env)
    for key in env:
        if key in KNOWN_UNSUPPORTED:
            raise ValueError(f"{where}: {key!r} is not supported by shoal "
                             f"(supported: {', '.join(SUPPORTED)})")
        if key not in SUPPORTED:
            raise ValueError(f"{where}: unknown field {key!r} "
                             f"(supported: {', '.join(SUPPORTED)})")
    env_vars = env.get("env_vars")
    if env_vars is not None and not (isinstance(env_vars, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
        raise TypeError(f"{where}: env_vars must be a dict of strings to strings, "
                        f"got {env_vars!r}")
    working_dir = env.get("working_dir")
    if working_dir is not None and not isinstance(working_dir, str):
        raise TypeError(f"{where}: working_dir must be a path (a string), got {working_dir!r}")
    py_modules = env.get("py_modules")
    if py_modules is not None and not (isinstance(py_modules, (list, tuple)) and all(
            isinstance(m, str) or hasattr(m, "__path__") or hasattr(m, "__file__")
            for m in py_modules)):
        raise TypeError(f"{where}: py_modules must be a list of paths or modules, "
                        f"got {py_modules!r}")
    excludes = env.get("excludes")
    if excludes is not None and not (isinstance(excludes, (list, tuple))
                                     and all(isinstance(e, str) for e in excludes)):
        raise TypeError(f"{where}: excludes must be a list of patterns, got {excludes!r}")
    if "pip" in env:
        env["pip"] = pip_packages(env["pip"], where)
    return env


def pip_packages(pip: Any, where: str = "runtime_env") -> list[str]:
    """``pip`` as a list of requirement strings: a list, ``{"packages": [...]}``,
    or the path of a requirements file."""
    if isinstance(pip, Mapping):
        pip = pip.get("packages", [])
    if isinstance(pip, str):
        try:
            with open(pip) as f:
                lines = [line.split("#", 1)[0].strip() for line in f]
        except OSError as exc:
            raise ValueError(f"{where}: pip: cannot read requirements file {pip!r}: {exc}") \
                from None
        pip = [line for line in lines if line]
    if not isinstance(pip, (list, tuple)) or not all(isinstance(p, str) for p in pip):
        raise TypeError(f"{where}: pip must be a list of requirements, a dict with "
                        f"'packages', or a requirements file path; got {pip!r}")
    return list(pip)


def merge(parent: Mapping | None, child: Mapping | None) -> dict:
    """The child's fields replace the parent's; ``env_vars`` are merged (child wins)."""
    out = dict(parent or {})
    for key, value in (child or {}).items():
        if key == "env_vars":
            out["env_vars"] = {**(out.get("env_vars") or {}), **(value or {})}
        else:
            out[key] = value
    return {k: v for k, v in out.items() if v not in (None, {}, [])}


def env_hash(resolved: Mapping | None) -> str:
    """The identity of a resolved env ("" for the empty env: the node's default workers)."""
    if not resolved:
        return ""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def pip_hash(packages: list[str]) -> str:
    return hashlib.sha256("\n".join(packages).encode()).hexdigest()[:20]


def expand_env_vars(env_vars: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """``${NAME}`` in a value is NAME's value in ``base`` (the node's environment),
    so ``{"PATH": "/opt/bin:${PATH}"}`` prepends; other text is kept as is."""
    out = {}
    for key, value in env_vars.items():
        text, pos, parts = value, 0, []
        while True:
            start = text.find("${", pos)
            end = text.find("}", start + 2) if start >= 0 else -1
            if start < 0 or end < 0:
                parts.append(text[pos:])
                break
            parts.append(text[pos:start])
            parts.append(base.get(text[start + 2:end], ""))
            pos = end + 1
        out[key] = "".join(parts)
    return out


__all__ = ["RuntimeEnvSetupError", "check", "env_hash", "expand_env_vars", "merge",
           "pip_packages"]
