"""Ray's ``ray.job_config.JobConfig``: settings of a job, given to ``init(job_config=)``.

Of its fields shoal uses ``runtime_env`` (the job's runtime environment, if
``init`` has no ``runtime_env=``), ``ray_namespace`` (likewise for
``namespace=``), ``default_actor_lifetime`` and ``metadata`` (kept with the job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_LIFETIMES = ("detached", "non_detached")


class JobConfig:
    def __init__(self, jvm_options: list | None = None, code_search_path: list | None = None,
                 runtime_env: dict | None = None, _client_job: bool = False,
                 metadata: dict | None = None, ray_namespace: str | None = None,
                 default_actor_lifetime: str = "non_detached",
                 _py_driver_sys_path: list | None = None) -> None:
        self.jvm_options = list(jvm_options or [])
        self.code_search_path = list(code_search_path or [])
        self.runtime_env: dict = {}
        self.set_runtime_env(runtime_env)
        self.metadata: dict = {}
        self.set_metadata_dict(metadata or {})
        self.ray_namespace: str | None = None
        self.set_ray_namespace(ray_namespace)
        self.default_actor_lifetime = "non_detached"
        self.set_default_actor_lifetime(default_actor_lifetime)
        self._py_driver_sys_path = list(_py_driver_sys_path or [])

    def set_metadata(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("JobConfig metadata keys and values must be strings")
        self.metadata[key] = value

    def set_metadata_dict(self, metadata: Mapping) -> None:
        for key, value in metadata.items():
            self.set_metadata(key, value)

    def set_runtime_env(self, runtime_env: Mapping | None, validate: bool = False) -> None:
        if runtime_env is not None and not isinstance(runtime_env, Mapping):
            raise TypeError(f"JobConfig: runtime_env must be a dict, got {runtime_env!r}")
        self.runtime_env = dict(runtime_env or {})
        if validate and self.runtime_env:
            from shoal.runtime_env.spec import check

            check(self.runtime_env, "JobConfig.runtime_env")

    def set_ray_namespace(self, ray_namespace: str | None) -> None:
        if ray_namespace is not None and not isinstance(ray_namespace, str):
            raise TypeError(f"JobConfig: ray_namespace must be a string, got {ray_namespace!r}")
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        if default_actor_lifetime not in _LIFETIMES:
            raise ValueError(f"JobConfig: default_actor_lifetime must be one of {_LIFETIMES}, "
                             f"got {default_actor_lifetime!r}")
        self.default_actor_lifetime = default_actor_lifetime

    def _serialization_dict(self) -> dict[str, Any]:
        return {"runtime_env": self.runtime_env, "metadata": self.metadata,
                "ray_namespace": self.ray_namespace,
                "default_actor_lifetime": self.default_actor_lifetime,
                "code_search_path": self.code_search_path}

    @classmethod
    def from_json(cls, job_config_json: Mapping) -> JobConfig:
        return cls(**{k: v for k, v in job_config_json.items()
                      if k in ("runtime_env", "metadata", "ray_namespace",
                               "default_actor_lifetime", "code_search_path", "jvm_options")})


__all__ = ["JobConfig"]
