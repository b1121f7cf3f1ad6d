"""An exception's state beyond ``args``: made without its ``__init__``, its slots
and its builtin fields.  Pure functions over classes, no shoal imports: both
``shoal.exceptions`` (TaskError.as_instanceof_cause, rebuilding shoal's own
errors) and ``shoal.core.error_envelope`` (carrying a task's exception) use
them.
"""

from __future__ import annotations

import types

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder if its ``__str__`` raises."""
    try:
        return str(exc)
    except Exception as err:
        return f"<str() of {type(exc).__name__} raised {type(err).__name__}>"


def blank_exception(cls: type, args: tuple = ()) -> BaseException:
    """An instance of exception class ``cls`` made without running its ``__init__``
    (nor a ``__new__`` written in Python), with ``args`` set.  It calls the
    ``__new__`` of the nearest builtin class on ``cls``'s layout chain: the one
    ``cls(...)`` would reach.  Calling ``cls.__new__`` instead picks the first
    ``__new__`` in the MRO, and MemoryError's refuses a class whose layout comes
    from another branch ("MemoryError.__new__(X) is not safe").  ``args`` go to
    ``__new__`` too, which ExceptionGroup needs (its fields are read-only)."""
    base = cls
    while base.__flags__ & HEAPTYPE:
        base = base.__base__
    try:
        exc = base.__new__(cls, *args)
    except Exception:  # a builtin __new__ that wants other arguments
        exc = base.__new__(cls)
    exc.args = args
    return exc


def python_slots(exc: BaseException) -> dict:
    """The ``__slots__`` values of ``exc``'s Python classes (set ones only)."""
    return _descriptor_values(exc, heap=True)


def builtin_fields(exc: BaseException) -> dict:
    """Fields of ``exc``'s builtin classes kept outside ``args`` and ``__dict__``
    (``OSError.errno``/``filename``, ``StopIteration.value``, ...)."""
    return _descriptor_values(exc, heap=False)


_BASE_CLASSES = (BaseException, object)


def _descriptor_values(exc: BaseException, heap: bool) -> dict:
    out: dict = {}
    for klass in type(exc).__mro__:
        if klass in _BASE_CLASSES or bool(klass.__flags__ & HEAPTYPE) != heap:
            continue
        for name, descr in vars(klass).items():
            if name.startswith("__") or not isinstance(descr, _DESCRIPTORS) or name in out:
                continue
            try:
                value = descr.__get__(exc, type(exc))
            except AttributeError:  # an unset slot
                continue
            if value is not None or heap:  # a builtin field reads None when unset, and
                out[name] = value  # setting it to None can change str() (OSError)
    return out


_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)
