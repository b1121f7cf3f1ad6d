"""Errors raised by shoal, under shoal's names and Ray's.

Application errors come back from ``get`` as a :class:`TaskError` that is
*also* an instance of the user's exception class (so ``except ValueError``
works) and carries the remote traceback.  System failures have their own
types so callers can tell "my code raised" from "a process died".
"""

from __future__ import annotations

import os


class ShoalError(Exception):
    """Base of every shoal error (Ray: ``RayError``)."""

    def __reduce__(self):
        # Errors cross processes.  Exception pickles only ``args`` and re-calls
        # __init__ with them, which garbles subclasses whose __init__ takes fields
        # before the message (ObjectLostError(object_id, message), ...).
        return _rebuild_error, (type(self), self.args, self.__dict__)


def _blank(cls: type) -> BaseException:
    """An instance of ``cls`` without running its __init__."""
    try:
        return cls.__new__(cls)
    except TypeError:  # a builtin second base with its own __new__ (MemoryError) refuses
        return BaseException.__new__(cls)


def _rebuild_error(cls: type, args: tuple, state: dict) -> ShoalError:
    err = _blank(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class RaySystemError(ShoalError):
    """shoal itself failed in a way it could not attribute to the user."""


class TaskError(ShoalError):
    """A task (or actor method) raised.  ``cause`` is the original exception."""

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        pid: int | None = None,
        actor_repr: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid if pid is not None else os.getpid()
        self.actor_repr = actor_repr
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.function_name}() (pid={self.pid}"
        if self.actor_repr:
            where += f", actor={self.actor_repr}"
        where += ")"
        return f"{type(self.cause).__name__ if self.cause else 'Error'} in {where}\n" + (
            self.traceback_str or repr(self.cause)
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        return (
            _rebuild_task_error,
            (self.function_name, self.traceback_str, self.cause, self.pid, self.actor_repr),
        )

    def as_instanceof_cause(self) -> TaskError:
        """A copy whose class derives from both TaskError and the cause's class."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or isinstance(self, cause_cls) or issubclass(TaskError, cause_cls):
            return self
        cls = _dual_class(cause_cls)
        if cls is None:
            return self
        err = _blank(cls)
        TaskError.__init__(
            err, self.function_name, self.traceback_str, self.cause, self.pid, self.actor_repr
        )
        err.args = getattr(self.cause, "args", ())
        # the cause's own attributes (e.g. errno) stay reachable
        try:
            for key, value in vars(self.cause).items():
                err.__dict__.setdefault(key, value)
        except TypeError:
            pass
        return err


_dual_classes: dict[type, type | None] = {}


def _dual_class(cause_cls: type) -> type | None:
    if cause_cls not in _dual_classes:
        try:
            name = f"TaskError({cause_cls.__name__})"
            cls = type(name, (TaskError, cause_cls), {"__str__": TaskError.__str__})
            cls.__module__ = cause_cls.__module__
        except TypeError:  # e.g. final classes, layout conflicts
            cls = None
        _dual_classes[cause_cls] = cls
    return _dual_classes[cause_cls]


def _rebuild_task_error(function_name, traceback_str, cause, pid, actor_repr):
    return TaskError(function_name, traceback_str, cause, pid, actor_repr)


class ActorError(ShoalError):
    """The actor could not run the call (Ray: ``RayActorError``)."""

    def __init__(self, message: str = "", actor_id: str | None = None) -> None:
        super().__init__(message or "the actor is unavailable")
        self.actor_id = actor_id


class ActorDiedError(ActorError):
    """The actor is dead and will not come back."""


class ActorUnavailableError(ActorError):
    """The actor is temporarily unreachable (e.g. restarting)."""


class GetTimeoutError(ShoalError, TimeoutError):
    """``get`` (or ``wait``) ran out of time."""


class WorkerCrashedError(ShoalError):
    """The worker process running the task died before finishing it."""


class NodeDiedError(ShoalError):
    """The node running the task died."""


class ClusterLostError(RaySystemError, ConnectionError):
    """This driver lost its cluster: the head (control store) or the node agent it
    uses is gone.  Every later call fails with this error until ``shutdown()``."""


class TaskCancelledError(ShoalError):
    """The task was cancelled with ``shoal.cancel``."""

    def __init__(self, task_id: str | None = None, message: str = "") -> None:
        super().__init__(message or f"task {task_id} was cancelled")
        self.task_id = task_id


class ObjectLostError(ShoalError):
    """No copy of the object is left and it cannot be rebuilt."""

    def __init__(self, object_id: str = "", message: str = "") -> None:
        super().__init__(message or f"object {object_id} is lost")
        self.object_id = object_id


class OwnerDiedError(ObjectLostError):
    """The process that owned the object died, so its value is unreachable."""


class ObjectFreedError(ObjectLostError):
    """The object was freed (all references dropped) before it was read."""


class ObjectReconstructionFailedError(ObjectLostError):
    """Rebuilding the object from lineage failed."""


class ObjectStoreFullError(ShoalError, MemoryError):
    """The node's shared-memory store has no room for a new object."""


class TaskUnschedulableError(ShoalError):
    """No node can ever run this task."""


class ActorUnschedulableError(ShoalError):
    """No node can ever host this actor."""


class OutOfMemoryError(ShoalError):
    """A worker was killed because the node ran out of memory."""


# Ray's names for the same types.
RayError = ShoalError
RayTaskError = TaskError
RayActorError = ActorError
LocalRayletDiedError = NodeDiedError

__all__ = [
    "ShoalError",
    "RayError",
    "RaySystemError",
    "TaskError",
    "RayTaskError",
    "ActorError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "GetTimeoutError",
    "WorkerCrashedError",
    "NodeDiedError",
    "LocalRayletDiedError",
    "ClusterLostError",
    "TaskCancelledError",
    "ObjectLostError",
    "OwnerDiedError",
    "ObjectFreedError",
    "ObjectReconstructionFailedError",
    "ObjectStoreFullError",
    "TaskUnschedulableError",
    "ActorUnschedulableError",
    "OutOfMemoryError",
]
