"""The node's side: making a resolved env real before a worker starts in it.

``RuntimeEnvSetup.setup(env)`` (on the agent's event loop) returns a
:class:`WorkerEnv`: what a worker process of that env is started with.  Work is
done once per env hash and cached for the agent's life (failures too: the same
env fails the same way, fast, instead of retrying pip for every task); the
packages and virtualenvs it makes are cached on disk by content hash under
``root`` and shared by every agent on the machine:

* ``working_dir``/``py_modules``: the package is fetched from the control store
  and unpacked (``root/pkg/<hash>``, see :mod:`packaging`);
* ``pip``: a virtualenv per requirement list (``root/pip/<hash>``), made with
  ``venv --without-pip``; a ``.pth`` file puts this interpreter's site
  directories after its own (``--system-site-packages``, but for the
  environment shoal runs in, so shoal and its dependencies import), then this
  interpreter's pip installs the requirements into it (``pip --python``) from
  whatever index the node's pip configuration names.  Built in a temporary
  folder and renamed into place, so a half-built env is never used.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import site
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from shoal.exceptions import RuntimeEnvSetupError
from shoal.runtime_env import packaging, spec

ENV_VAR = "SHOAL_RUNTIME_ENV"  # what a worker reads at start (see worker_apply)
PIP_TIMEOUT_S = 600.0
OUTPUT_TAIL_CHARS = 3000


@dataclass
class WorkerEnv:
    """How to start a worker in one env."""

    env_hash: str
    env_vars: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    paths: list[str] = field(default_factory=list)  # put first on the worker's sys.path
    python: str | None = None  # a pip env's interpreter (None: the node's, forked)
    resolved: dict = field(default_factory=dict)  # what the worker's own submissions inherit

    def process_env(self) -> dict[str, str]:
        """Environment variables of the worker process."""
        out = dict(self.env_vars)
        out[ENV_VAR] = json.dumps({"hash": self.env_hash, "cwd": self.cwd,
                                   "paths": self.paths, "resolved": self.resolved})
        if self.python is not None:
            out["VIRTUAL_ENV"] = os.path.dirname(os.path.dirname(self.python))
        return out


class RuntimeEnvSetup:
    def __init__(self, root: str, kv_get: Callable[[str], Awaitable[bytes | None]],
                 base_env: Mapping[str, str]) -> None:
        self.root = root
        self._kv_get = kv_get
        self._base_env = base_env
        self._results: dict[str, asyncio.Future] = {}

    async def setup(self, resolved: dict) -> WorkerEnv:
        """The env's WorkerEnv; RuntimeEnvSetupError (with the reason) if it cannot be made."""
        env_hash = spec.env_hash(resolved)
        fut = self._results.get(env_hash)
        if fut is None:
            fut = self._results[env_hash] = asyncio.ensure_future(self._make(resolved, env_hash))
        return await asyncio.shield(fut)

    async def _make(self, resolved: dict, env_hash: str) -> WorkerEnv:
        try:
            return await self._build(resolved, env_hash)
        except RuntimeEnvSetupError:
            raise
        except Exception as exc:
            raise RuntimeEnvSetupError(
                f"setting up runtime_env {_describe(resolved)} failed: "
                f"{type(exc).__name__}: {exc}") from None

    async def _build(self, resolved: dict, env_hash: str) -> WorkerEnv:
        worker_env = WorkerEnv(env_hash, resolved=resolved)
        worker_env.env_vars = spec.expand_env_vars(resolved.get("env_vars") or {},
                                                   self._base_env)
        working_dir = resolved.get("working_dir")
        if working_dir:
            worker_env.cwd = await self._package(working_dir)
            worker_env.paths.append(worker_env.cwd)
        for module in resolved.get("py_modules") or ():
            worker_env.paths.append(await self._package(module))
        if resolved.get("pip"):
            worker_env.python = await self._pip_env(resolved["pip"])
        return worker_env

    async def _package(self, uri: str) -> str:
        if not uri.startswith(spec.PACKAGE_PREFIX):
            raise ValueError(f"unexpected package {uri!r}")
        digest = uri[len(spec.PACKAGE_PREFIX):]
        path = packaging.unpacked_path(self.root, digest)
        if os.path.isdir(path):
            return path
        data = await self._kv_get(digest)
        if data is None:
            raise LookupError(f"package {digest} is not in the control store")
        return await asyncio.get_running_loop().run_in_executor(
            None, packaging.unpack, self.root, digest, data)

    async def _pip_env(self, packages: list[str]) -> str:
        final = os.path.join(self.root, "pip", spec.pip_hash(packages))
        python = os.path.join(final, "bin", "python")
        if os.path.exists(os.path.join(final, ".ready")):
            return python
        os.makedirs(os.path.dirname(final), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(final))
        try:
            await _run([sys.executable, "-m", "venv", "--without-pip", tmp], "venv")
            _link_base_site(tmp)
            await _run([sys.executable, "-m", "pip", "--python", os.path.join(tmp, "bin", "python"),
                        "install", "--disable-pip-version-check", "--no-input", *packages],
                       f"pip install {' '.join(packages)}")
            open(os.path.join(tmp, ".ready"), "w").close()
            try:
                os.rename(tmp, final)
            except OSError:
                if not os.path.exists(os.path.join(final, ".ready")):
                    raise
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return python


def _link_base_site(venv: str) -> None:
    """A .pth in the venv that adds this interpreter's site directories after the
    venv's own (processing their .pth files too: editable installs)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_dir = os.path.join(venv, "lib", version, "site-packages")
    os.makedirs(site_dir, exist_ok=True)
    dirs = [p for p in (*site.getsitepackages(), *sys.path)
            if p and os.path.isdir(p) and os.path.basename(p) in ("site-packages",
                                                                   "dist-packages")]
    unique = list(dict.fromkeys(os.path.abspath(d) for d in dirs))
    with open(os.path.join(site_dir, "_shoal_base_site.pth"), "w") as f:
        f.write(f"import site; list(map(site.addsitedir, {unique!r}))\n")


async def _run(argv: list[str], what: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PIP_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeEnvSetupError(f"{what} did not finish within {PIP_TIMEOUT_S:.0f} s") \
            from None
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip()[-OUTPUT_TAIL_CHARS:]
        raise RuntimeEnvSetupError(f"{what} failed (exit code {proc.returncode}):\n{tail}")


def _describe(resolved: Mapping) -> str:
    return "{" + ", ".join(sorted(resolved)) + "}"


def default_root() -> str:
    return os.environ.get("SHOAL_RUNTIME_RESOURCES",
                          os.path.join(tempfile.gettempdir(), "shoal-runtime-resources"))
