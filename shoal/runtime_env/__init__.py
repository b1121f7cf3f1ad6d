"""Runtime environments (Ray's ``ray.runtime_env``): what a task's or actor's
worker process runs with — environment variables, a working directory and
modules shipped from the submitting machine, pip packages in a virtualenv.

    shoal.init(runtime_env={"env_vars": {"MODE": "test"}, "working_dir": "."})
    f.options(runtime_env={"pip": ["requests"]}).remote()

See :mod:`spec` (checking, merging, hashing), :mod:`client` (the submitting
side), :mod:`setup` (the node's side) and docs/design.md for the costs.
"""

from __future__ import annotations

from typing import Any


class RuntimeEnvConfig(dict):
    """Options of an env's setup (Ray's ``RuntimeEnvConfig``); accepted, not used."""

    def __init__(self, setup_timeout_seconds: int = 600, eager_install: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(setup_timeout_seconds=setup_timeout_seconds,
                         eager_install=eager_install, **kwargs)


class RuntimeEnv(dict):
    """A runtime env as a dict with Ray's keyword constructor; usable wherever a
    ``runtime_env`` dict is."""

    def __init__(self, *, py_modules: list | None = None, working_dir: str | None = None,
                 pip: Any = None, env_vars: dict | None = None, config: Any = None,
                 _validate: bool = True, **kwargs: Any) -> None:
        super().__init__()
        for key, value in (("py_modules", py_modules), ("working_dir", working_dir),
                           ("pip", pip), ("env_vars", env_vars), ("config", config),
                           *kwargs.items()):
            if value is not None:
                self[key] = value
        if _validate:
            from shoal.runtime_env.spec import check

            check(self, "RuntimeEnv")


__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
