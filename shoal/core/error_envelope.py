"""Carrying a task's exception to the process that reads it, whatever its class.

A :class:`~shoal.exceptions.TaskError` is pickled as an *envelope*: task name,
pid, actor, traceback text, and the cause as a :class:`CarriedCause`, whose
pickle is a separate blob.  A cause that cannot be pickled, or whose pickle
would not load, therefore costs only the cause, never the envelope::

    worker (raise site)                          reader (get)
      cause --_ExceptionPickler--> blob            blob --loads--> cause
      blob --trial loads (refs detached)-->ok?     | fails: UnserializableException
      | no: blob=None, reason=the failure          |   (class name, str(), traceback,
      CarriedCause(class name, str(), blob, reason)     and the reason)

How an exception is pickled (``_ExceptionPickler.reducer_override``, for the
cause and every exception inside it: its chain, an ExceptionGroup's members,
exceptions in its arguments or attributes):

* a class whose Python code defines ``__reduce__``/``__reduce_ex__`` gets that
  reduction: the class said how to rebuild it;
* any other class is rebuilt *from its state*, without calling its
  ``__init__``: Python's own reduction re-calls ``cls(*args)``, which fails or
  garbles the value for any ``__init__`` whose parameters are not its ``args``
  (``MyErr(code, msg)`` calling ``super().__init__(f"{code}: {msg}")``).  The
  state is ``args``, ``__dict__``, the ``__slots__`` of its Python classes and the
  fields of its builtin ones (``OSError.errno``, ``StopIteration.value``, ...;
  those are best effort: Python's pickle drops ``AttributeError.obj`` too);
* either way ``__cause__``, ``__context__`` and ``__suppress_context__`` ride in
  the pickle's state (set after the object exists, so a cycle through them
  cannot recurse); ``__traceback__`` never does: its text is in the envelope.

The worker verifies a blob by loading it back before sending it, because that
is where the traceback and the reason are known; if the chain is what fails,
it tries once more without it (the traceback text still shows the chain).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

import cloudpickle

from shoal.core import serialization
from shoal.core.exception_state import (
    HEAPTYPE,
    blank_exception,
    builtin_fields,
    python_slots,
    safe_str,
)
from shoal.exceptions import TaskError, UnserializableException, install_task_error_envelope

_PLAIN = (type(None), bool, int, float, complex, str, bytes)


@dataclass(frozen=True, slots=True)
class CarriedCause:
    """A remote exception on its way: ``blob`` (its pickle) is None when it could
    not be pickled and rebuilt where it was raised, and ``reason`` says why."""

    class_name: str  # module.qualname
    message: str  # its str()
    blob: bytes | None
    reason: str = ""


def class_label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def pack_cause(cause: BaseException) -> CarriedCause:
    """The cause as a CarriedCause whose blob is known to load (see the module doc).
    ObjectRefs inside it are collected by the enclosing ``serialize`` as usual."""
    label, message = class_label(type(cause)), safe_str(cause)
    has_chain = cause.__cause__ is not None or cause.__context__ is not None
    refs = serialization.collecting_refs()
    failure = ""
    for keep_chain in (True, False) if has_chain else (True,):
        mark = len(refs) if refs is not None else 0
        try:
            blob = dumps(cause, keep_chain)
            rebuilt = serialization.loads_detached(blob)
            if not isinstance(rebuilt, BaseException):
                raise TypeError(f"it was rebuilt as a {type(rebuilt).__name__}")
            return CarriedCause(label, message, blob)
        except Exception as exc:  # any failure of user code is a reason
            if refs is not None:
                del refs[mark:]
            failure = f"{type(exc).__name__}: {safe_str(exc)}"  # the last: its own
    return CarriedCause(label, message, None,
                        f"it isn't serializable: it did not survive pickling where it was "
                        f"raised ({failure})")


def unpack_cause(carried: CarriedCause, traceback_str: str) -> BaseException:
    """The rebuilt cause, or an UnserializableException standing in for it."""
    reason = carried.reason
    if carried.blob is not None:
        try:
            cause = pickle.loads(carried.blob)
        except Exception as exc:  # e.g. its class is not importable here
            reason = f"it could not be unpickled here ({type(exc).__name__}: {safe_str(exc)})"
        else:
            if isinstance(cause, BaseException):
                return cause
            reason = f"it was unpickled here as a {type(cause).__name__}, not an exception"
    return UnserializableException(traceback_str, carried.class_name, carried.message, reason)


def dumps(exc: BaseException, keep_chain: bool = True) -> bytes:
    """Pickle an exception so that it loads whatever its ``__init__`` takes."""
    out = io.BytesIO()
    _ExceptionPickler(out, keep_chain).dump(exc)
    return out.getvalue()


class _ExceptionPickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, keep_chain: bool) -> None:
        super().__init__(file, protocol=5)
        self.keep_chain = keep_chain

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, BaseException):
            return super().reducer_override(obj)
        chain = ((obj.__cause__, obj.__context__, obj.__suppress_context__)
                 if self.keep_chain else None)
        if _defines_reduce(type(obj)):
            reduced = obj.__reduce_ex__(5)
            if not isinstance(reduced, tuple):
                return reduced
            func, args, state, items, pairs, setter = reduced + (None,) * (6 - len(reduced))
            return func, args, (state, setter, chain), items, pairs, _restore_reduced
        state = (obj.__dict__, python_slots(obj), _carried_fields(obj), chain)
        return blank_exception, (type(obj), obj.args), state, None, None, _restore_state


def _defines_reduce(cls: type) -> bool:
    """Whether Python code in ``cls``'s hierarchy says how to pickle it (the builtin
    reductions of BaseException, OSError, ImportError all call ``cls(*args)``)."""
    for klass in cls.__mro__:
        if not klass.__flags__ & HEAPTYPE:
            return False
        if "__reduce__" in vars(klass) or "__reduce_ex__" in vars(klass):
            return True
    return False




def _carried_fields(exc: BaseException) -> dict:
    """The builtin fields that can travel: plain values, values also in ``args``
    (pickled anyway), and others only if they pickle on their own."""
    out = {}
    for name, value in builtin_fields(exc).items():
        if (isinstance(value, _PLAIN) or any(value is a for a in exc.args)
                or _pickles(value)):
            out[name] = value
    return out


def _pickles(value: Any) -> bool:
    try:
        serialization.loads_detached(cloudpickle.dumps(value, protocol=5))
    except Exception:
        return False
    return True


def _restore_state(exc: BaseException, state: tuple) -> None:
    attrs, slots, fields, chain = state
    if type(exc).__setstate__ is BaseException.__setstate__:
        exc.__dict__.update(attrs)
    else:  # the class's own, as pickle would call it
        exc.__setstate__(attrs)
    for name, value in slots.items():
        setattr(exc, name, value)
    for name, value in fields.items():
        try:
            setattr(exc, name, value)
        except (AttributeError, TypeError):  # read-only here (ExceptionGroup.message)
            pass
    _restore_chain(exc, chain)


def _restore_reduced(obj: Any, packed: tuple) -> None:
    """Apply a class's own reduction state as pickle would, then the chain."""
    state, setter, chain = packed
    if setter is not None:
        setter(obj, state)
    elif state is not None:
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            attrs, slots = state if isinstance(state, tuple) else (state, None)
            obj.__dict__.update(attrs or {})
            for name, value in (slots or {}).items():
                setattr(obj, name, value)
    if isinstance(obj, BaseException):
        _restore_chain(obj, chain)


def _restore_chain(exc: BaseException, chain: tuple | None) -> None:
    if chain is not None:
        exc.__cause__, exc.__context__, exc.__suppress_context__ = chain


def reduce_task_error(err: TaskError) -> tuple:
    """TaskError's pickle: the envelope, with the cause as a CarriedCause; an
    instance of both TaskError and its cause's class (``as_instanceof_cause``,
    what ``get`` raises) is rebuilt as one again."""
    carried = pack_cause(err.cause) if err.cause is not None else None
    dual = type(err) is not TaskError and err.cause is not None and isinstance(
        err, type(err.cause))
    return (rebuild_task_error,
            (err.function_name, err.traceback_str, carried, err.pid, err.actor_repr, dual))


def rebuild_task_error(function_name: str, traceback_str: str, carried: CarriedCause | None,
                       pid: int, actor_repr: str | None, dual: bool = False) -> TaskError:
    cause = unpack_cause(carried, traceback_str) if carried is not None else None
    err = TaskError(function_name, traceback_str, cause, pid, actor_repr)
    return err.as_instanceof_cause() if dual else err


install_task_error_envelope(reduce_task_error)
