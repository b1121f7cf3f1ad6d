"""The submitting side: a task's or actor's env, merged with its parent's and
resolved (local directories uploaded) once per distinct env.

Each process has one client.  Its ``parent`` is the env its submissions
inherit: the job's (``init(runtime_env=)``) in a driver, the env the worker was
started in in a worker (so child tasks inherit their parent's env, as in Ray).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from shoal.runtime_env import packaging, spec


class RuntimeEnvClient:
    def __init__(self, kv_put: Callable[[str, bytes], Any], parent: Mapping | None) -> None:
        self._kv_put = kv_put
        self.parent = spec.check(parent, "runtime_env")
        self._resolved: dict[str, tuple[dict, str]] = {}
        self._lock = threading.Lock()

    def resolve(self, own: Mapping | None) -> tuple[dict, str]:
        """``(resolved env, its hash)`` of a submission whose own ``runtime_env``
        option is ``own`` (None: the parent's)."""
        if not own and not self.parent:
            return {}, ""
        merged = spec.merge(self.parent, spec.check(own, "option 'runtime_env'"))
        key = json.dumps(merged, sort_keys=True, default=repr)
        with self._lock:
            hit = self._resolved.get(key)
            if hit is None:
                resolved = self._upload(merged)
                hit = self._resolved[key] = (resolved, spec.env_hash(resolved))
        return hit

    def _upload(self, env: dict) -> dict:
        out = {k: v for k, v in env.items() if k not in ("excludes", "config")}
        excludes = env.get("excludes") or ()
        working_dir = env.get("working_dir")
        if working_dir and not working_dir.startswith(spec.PACKAGE_PREFIX):
            out["working_dir"] = spec.PACKAGE_PREFIX + packaging.upload_directory(
                os.path.abspath(os.path.expanduser(working_dir)), excludes, "", self._put)
        modules = []
        for module in env.get("py_modules") or ():
            if isinstance(module, str) and module.startswith(spec.PACKAGE_PREFIX):
                modules.append(module)
                continue
            path = _module_dir(module)
            modules.append(spec.PACKAGE_PREFIX + packaging.upload_directory(
                path, excludes, os.path.basename(path), self._put))
        if modules:
            out["py_modules"] = modules
        return out

    def _put(self, key: str, data: bytes) -> None:
        self._kv_put(key, data)


def client_for(worker: Any, parent: Mapping | None) -> RuntimeEnvClient:
    """The client of a started core worker: packages go to the control store."""
    from shoal.rpc.messages import Method

    def kv_put(key: str, data: bytes) -> None:
        worker.control_call(Method.KV_PUT, [packaging.KV_NAMESPACE, key, data, False],
                            timeout=120)

    return RuntimeEnvClient(kv_put, parent)


def _module_dir(module: Any) -> str:
    """A py_modules entry as the directory to ship: a path, or an imported package."""
    if isinstance(module, str):
        path = os.path.abspath(os.path.expanduser(module))
        if path.endswith((".whl", ".zip")) or not os.path.isdir(path):
            raise ValueError(f"runtime_env: py_modules entry {module!r} must be a local "
                             "directory (a package folder)")
        return path
    paths = list(getattr(module, "__path__", []) or [])
    if not paths:
        raise ValueError(f"runtime_env: py_modules entry {module!r} is a module, not a "
                         "package; give the folder that holds it")
    return os.path.abspath(paths[0])
