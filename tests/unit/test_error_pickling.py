"""Every shoal error survives pickling (errors cross processes as task results), and a
task's error is also an instance of its cause's class."""

from __future__ import annotations

import inspect
import pickle

import pytest

from shoal import exceptions

ERRORS = [cls for _, cls in inspect.getmembers(exceptions, inspect.isclass)
          if issubclass(cls, exceptions.ShoalError) and cls is not exceptions.TaskError]


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls):
    try:  # a bare instance with only a message, as a remote side may send it
        err = cls.__new__(cls)
    except TypeError:  # MemoryError's own __new__ refuses subclasses
        err = BaseException.__new__(cls)
    err.args = ("what went wrong",)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and back.args == err.args


def test_store_full_error_stays_a_memory_error_across_processes():
    err = exceptions.ObjectStoreFullError("object store is full: 100 bytes")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, MemoryError) and str(back) == str(err)


@pytest.mark.parametrize("cause", [MemoryError("boom"),
                                   exceptions.ObjectStoreFullError("store is full")],
                         ids=["MemoryError", "ObjectStoreFullError"])
def test_task_error_of_a_memory_error_is_also_that_error(cause):
    sent = pickle.dumps(exceptions.TaskError("f", "Traceback ...", cause))  # the worker
    err = pickle.loads(sent).as_instanceof_cause()  # the caller's get
    assert isinstance(err, type(cause)) and isinstance(err, exceptions.TaskError)
    assert err.args == cause.args


class _TwoArgError(Exception):
    def __init__(self, one, two):
        super().__init__(one)
        self.one, self.two = one, two

    def __reduce__(self):
        return type(self), (self.one, self.two)


@pytest.mark.parametrize("envelope", [False, True])
def test_a_task_error_that_is_also_its_cause_stays_both_across_pickling(envelope,
                                                                         monkeypatch):
    """Ray's ``make_dual_exception_instance()`` (our ``as_instanceof_cause``): what a
    ``get`` raises pickles back as an instance of both classes, with the cause's
    attributes, with or without the cross-process envelope."""
    from shoal.core import error_envelope

    if not envelope:
        monkeypatch.setattr(exceptions, "_task_error_envelope", None)
    else:
        monkeypatch.setattr(exceptions, "_task_error_envelope", error_envelope.reduce_task_error)
    err = exceptions.TaskError("f", "traceback", _TwoArgError("a", "b"))
    dual = err.make_dual_exception_instance()
    back = pickle.loads(pickle.dumps(dual))
    assert isinstance(back, exceptions.TaskError) and isinstance(back, _TwoArgError)
    assert (back.one, back.two, back.function_name) == ("a", "b", "f")
