"""Errors raised by shoal, under shoal's names and Ray's.

Application errors come back from ``get`` as a :class:`TaskError` that is
*also* an instance of the user's exception class (so ``except ValueError``
works) and carries the remote traceback.  System failures have their own
types so callers can tell "my code raised" from "a process died".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from shoal.core.exception_state import blank_exception, builtin_fields, python_slots


class ShoalError(Exception):
    """Base of every shoal error (Ray: ``RayError``)."""

    def __reduce__(self):
        # Errors cross processes.  Exception pickles only ``args`` and re-calls
        # __init__ with them, which garbles subclasses whose __init__ takes fields
        # before the message (ObjectLostError(object_id, message), ...).
        return _rebuild_error, (type(self), self.args, self.__dict__)


def _rebuild_error(cls: type, args: tuple, state: dict) -> ShoalError:
    err = blank_exception(cls, args)  # not cls.__new__: see blank_exception (MemoryError)
    err.__dict__.update(state)
    return err


class RaySystemError(ShoalError):
    """shoal itself failed in a way it could not attribute to the user."""


class UnserializableException(ShoalError):
    """Stands in for a remote exception that could not be carried here or rebuilt
    here (unpicklable attributes, a broken ``__reduce__``, a class this process
    cannot import): it names the class and keeps its ``str()`` and traceback.
    ``get`` raises it as a :class:`TaskError` whose ``cause`` it is."""

    def __init__(self, original_stack_trace: str = "", class_name: str = "",
                 message: str = "", reason: str = "") -> None:
        self.original_stack_trace = original_stack_trace  # Ray's name for it
        self.class_name = class_name  # module.qualname of the original exception
        self.message = message  # its str()
        self.reason = reason  # why it could not be rebuilt
        super().__init__(self._text())

    def _text(self) -> str:
        return (f"{self.class_name}: {self.message}\n(raised as UnserializableException "
                f"because {self.reason or 'it could not be rebuilt'})")

    def __str__(self) -> str:
        return self._text()


class TaskError(ShoalError):
    """A task (or actor method) raised.  ``cause`` is the original exception, or an
    :class:`UnserializableException` if it could not be rebuilt here.

    Pickled as an envelope (:mod:`shoal.core.error_envelope`): whatever the cause's
    class does, the task name, pid, actor and traceback text arrive."""

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
        cause = self.cause
        if isinstance(cause, UnserializableException):
            return (f"{cause.class_name} in {where}, raised as UnserializableException "
                    f"because {cause.reason}\n" + (self.traceback_str or cause.message))
        name = type(cause).__name__ if cause is not None else "Error"
        return f"{name} in {where}\n" + (self.traceback_str or _safe_repr(cause))

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):
        if _task_error_envelope is not None:
            return _task_error_envelope(self)
        dual = type(self) is not TaskError and isinstance(self, type(self.cause))
        return (_rebuild_task_error, (self.function_name, self.traceback_str, self.cause,
                                      self.pid, self.actor_repr, dual))

    def as_instanceof_cause(self) -> TaskError:
        """A copy whose class derives from both TaskError and the cause's class,
        made without calling the cause class's ``__init__``; it has the cause's
        ``args``, attributes, fields and chain.  ``self`` if no such class can be
        made (a final class, a layout conflict, a BaseException in an
        ExceptionGroup)."""
        cause = self.cause
        if cause is None or isinstance(self, type(cause)):
            return self
        cls = _dual_class(type(cause))
        if cls is None:
            logging.getLogger("shoal.exceptions").warning(
                "%s refuses subclasses, so it cannot be raised as a class that is both it "
                "and TaskError. This exception is raised as RayTaskError only. You can use "
                "`ray_task_error.cause` to access the user exception.",
                type(cause).__qualname__)
            return self
        try:
            err = blank_exception(cls, cause.args)
            for name, value in {**builtin_fields(cause), **python_slots(cause)}.items():
                try:
                    setattr(err, name, value)
                except (AttributeError, TypeError):
                    pass
        except Exception:  # e.g. ExceptionGroup refusing TaskError
            return self
        err.__dict__.update(cause.__dict__)  # the cause's attributes (code, __notes__)
        err.__dict__.update(self.__dict__)  # ours win: function_name, cause, pid, ...
        err.__cause__ = cause.__cause__
        err.__context__ = cause.__context__
        err.__suppress_context__ = cause.__suppress_context__
        return err

    make_dual_exception_instance = as_instanceof_cause  # Ray's name for the same


def _rebuild_task_error(function_name: str, traceback_str: str, cause: BaseException | None,
                        pid: int | None, actor_repr: str | None, dual: bool) -> TaskError:
    err = TaskError(function_name, traceback_str, cause, pid, actor_repr)
    return err.as_instanceof_cause() if dual else err


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


_dual_classes: dict[type, type | None] = {}


def _rebuild_task_error(function_name: str, traceback_str: str, cause: BaseException | None,
                        pid: int | None, actor_repr: str | None, dual: bool) -> TaskError:
    """A TaskError pickled without the envelope; one that was also an instance of its
    cause's class is rebuilt as one again."""
    err = TaskError(function_name, traceback_str, cause, pid, actor_repr)
    return err.as_instanceof_cause() if dual else err


def _dual_class(cause_cls: type) -> type | None:
    if cause_cls not in _dual_classes:
        try:
            name = f"TaskError({cause_cls.__name__})"
            cls = type(name, (TaskError, cause_cls), {"__str__": TaskError.__str__})
            cls.__module__ = cause_cls.__module__
        except Exception:  # final classes, layout conflicts, __init_subclass__
            cls = None
        _dual_classes[cause_cls] = cls
    return _dual_classes[cause_cls]


# How a TaskError pickles: shoal.core.error_envelope installs its envelope (the
# cause in a blob of its own, so a cause that cannot travel costs only itself)
# when it is imported, which every process that runs tasks, or unpickles their
# errors, has done.  A TaskError pickled before that (made by hand in a process
# that never ran shoal) carries its cause as it is.
_task_error_envelope: Callable[[TaskError], tuple] | None = None


def install_task_error_envelope(reduce: Callable[[TaskError], tuple]) -> None:
    global _task_error_envelope
    _task_error_envelope = reduce


class ActorError(ShoalError):
    """The actor could not run the call (Ray: ``RayActorError``)."""

    def __init__(self, message: str = "", actor_id: str | None = None) -> None:
        super().__init__(message or "the actor is unavailable")
        self.actor_id = actor_id


class ActorDiedError(ActorError):
    """The actor is dead and will not come back."""


class ActorUnavailableError(ActorError):
    """The actor is temporarily unreachable (e.g. restarting)."""


class AsyncioActorExit(ShoalError):
    """Raised inside an async actor by ``exit_actor()`` to end it (Ray's name)."""


class RuntimeEnvSetupError(ShoalError):
    """The task's or actor's runtime environment could not be set up; the message
    says why (e.g. the end of pip's output)."""


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


class TaskPlacementGroupRemoved(ShoalError):
    """The placement group the task was to run in was removed."""


class ActorPlacementGroupRemoved(ShoalError):
    """The placement group the actor was to run in was removed."""


# Ray's names for the same types.
RayError = ShoalError
RayTaskError = TaskError
RayActorError = ActorError
LocalRayletDiedError = NodeDiedError

__all__ = [
    "ShoalError",
    "TaskPlacementGroupRemoved",
    "ActorPlacementGroupRemoved",
    "RayError",
    "RaySystemError",
    "UnserializableException",
    "TaskError",
    "RayTaskError",
    "ActorError",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "AsyncioActorExit",
    "RuntimeEnvSetupError",
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
