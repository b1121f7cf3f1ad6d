"""``shoal.get_runtime_context()``: who and where the caller is."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from shoal.api.id_types import HexId


def _deprecated_id(value: str | None, getter: str) -> HexId | None:
    """Ray's old id properties (``job_id``, ``task_id``, ...): the id as an object with
    ``hex()``, and a DeprecationWarning naming the ``get_*`` method to use."""
    warnings.warn(f"Use {getter}() instead", DeprecationWarning, stacklevel=3)
    return None if value is None else HexId(value)


class RuntimeContext:
    def __init__(self, worker: Any) -> None:
        self._worker = worker

    def _task(self):
        return self._worker.task_context.get()

    def get_job_id(self) -> str:
        return self._worker.job_id

    def get_node_id(self) -> str:
        return self._worker.node_id

    def get_worker_id(self) -> str:
        return self._worker.worker_id

    def get_task_id(self) -> str | None:
        task = self._task()
        return task.task_id.hex() if task is not None and task.task_id else None

    def get_task_name(self) -> str | None:
        task = self._task()
        return task.task_name if task is not None else None

    def get_actor_id(self) -> str | None:
        task = self._task()
        if task is not None and task.actor_id:
            return task.actor_id
        executor = self._worker.executor
        return executor.actor_id if executor is not None else None

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """True inside an actor that was restarted (``max_restarts``): its
        constructor may want to restore state saved by the previous incarnation."""
        executor = self._worker.executor
        return bool(executor is not None and executor.actor_id
                    and executor.actor_num_restarts > 0)

    def is_canceled(self) -> bool:
        """Whether ``cancel`` was called on the running task (a sync or threaded actor
        call keeps running when cancelled: it may check this to stop early)."""
        executor = self._worker.executor
        if executor is None:
            raise RuntimeError("is_canceled() is only available inside a task or actor "
                               "call (this process is a driver)")
        task = self._task()
        return executor.is_cancelled(task.task_id if task is not None else None)

    @property
    def current_actor(self) -> Any:
        """A handle to the actor this call runs in."""
        executor = self._worker.executor
        if executor is None or not executor.actor_id:
            raise RuntimeError("current_actor is only available inside an actor")
        from shoal.api.actor import handle_of_running_actor

        return handle_of_running_actor(executor.actor_id, type(executor.actor), self._worker)

    def get_actor_name(self) -> str | None:
        """The current actor's name ("" if it has none); None outside an actor."""
        executor = self._worker.executor
        if executor is None or not executor.actor_id:
            return None
        return executor.actor_name

    def get_task_function_name(self) -> str | None:
        """``module.function`` (``module.Class.method`` in an actor) of the running
        task; None in a driver."""
        task = self._task()
        fn = task.function if task is not None else None
        if fn is None:
            return None
        owner = getattr(fn, "__self__", None)
        if owner is not None and not isinstance(owner, type):
            cls = type(owner)
            if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
                return f"{cls.__module__}.{fn.__qualname__}"  # as Ray names async methods
            return f"{cls.__module__}.{cls.__name__}.{fn.__name__}"
        name = getattr(fn, "__name__", None) or task.task_name
        return f"{getattr(fn, '__module__', None) or '__main__'}.{name}"

    def get_session_name(self) -> str:
        """The same in every process of one cluster run: named after its control
        store's address (shoal has no separate session id)."""
        address = self._worker.config.control_address
        return "session_" + "".join(c if c.isalnum() else "_" for c in address)

    def get_namespace(self) -> str:
        return self._worker.namespace

    def get_assigned_resources(self) -> dict[str, float]:
        task = self._task()
        resources = task.resources if task is not None else None
        executor = self._worker.executor
        if not resources and executor is not None and executor.actor_id:
            resources = executor.actor_resources  # an actor's, for its lifetime
        return {k: float(v) for k, v in (resources or {}).items()}

    def get_placement_group_id(self) -> str | None:
        """The id of the placement group the caller runs in, or None."""
        from shoal.core.placement_client import current_placement

        placement = current_placement(self._worker)
        return placement[0] if placement else None

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        """The accelerator ids assigned to the calling task or actor, as strings:
        ``{"GPU": ["0"]}`` (empty lists in the driver and without ``num_gpus``)."""
        task = self._task()
        assigned = task.accelerators if task is not None else None
        if assigned is None and self._worker.executor is not None:
            assigned = self._worker.executor.actor_accelerators
        return {"GPU": list((assigned or {}).get("GPU", ()))}

    @property
    def job_id(self) -> HexId | None:
        return _deprecated_id(self.get_job_id(), "get_job_id")

    @property
    def node_id(self) -> HexId | None:
        return _deprecated_id(self.get_node_id(), "get_node_id")

    @property
    def task_id(self) -> HexId | None:
        return _deprecated_id(self.get_task_id(), "get_task_id")

    @property
    def actor_id(self) -> HexId | None:
        return _deprecated_id(self.get_actor_id(), "get_actor_id")

    @property
    def current_placement_group_id(self) -> HexId | None:
        return _deprecated_id(self.get_placement_group_id(), "get_placement_group_id")

    @property
    def namespace(self) -> str:
        return self.get_namespace()

    @property
    def gcs_address(self) -> str:
        return self._worker.config.control_address

    def get(self) -> dict:
        """job_id, node_id and namespace; task_id and actor_id where there is one (the
        ids are strings that also answer ``hex()``, as Ray's id objects do)."""
        out = {"job_id": HexId(self.get_job_id()), "node_id": HexId(self.get_node_id()),
               "namespace": self.get_namespace()}
        for key, value in (("task_id", self.get_task_id()), ("actor_id", self.get_actor_id())):
            if value is not None:
                out[key] = HexId(value)
        return out


def get_gpu_ids() -> list[int]:
    """The GPU ids assigned to the calling task or actor (Ray: ``ray.get_gpu_ids``)."""
    ids = get_runtime_context().get_accelerator_ids()["GPU"]
    return [int(i) if i.isdigit() else i for i in ids]


def get_runtime_context() -> RuntimeContext:
    from shoal.api.session import ensure_worker

    return RuntimeContext(ensure_worker())
