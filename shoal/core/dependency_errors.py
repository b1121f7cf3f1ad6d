"""What a task whose argument failed ends with.

A failed argument fails the task that takes it.  An argument that *raised* (a
TaskError) is passed on as it is, so the consumer sees the producer's error.  An
argument holding a system error (*lost*: no copy left and it cannot be rebuilt;
its worker crashed; it was cancelled ...) is, in Ray, an error raised while the
consumer's worker fetched its arguments, so the consumer's get raises a task
error of the consumer whose cause is that error (an instance of both classes,
as every task error is).  The owner decides this before
the task is leased, so it builds that task error here.
"""

from __future__ import annotations

import os

from shoal import exceptions
from shoal.core import serialization
from shoal.core.value_table import StoredValue
from shoal.core.value_wire import error_value


def consumer_error(task_name: str, failed: StoredValue) -> StoredValue:
    """The value the task named ``task_name`` ends with, given the error value of
    one of its arguments."""
    if failed.inline is None:
        return failed
    try:
        err = serialization.loads_detached(failed.inline.inband)
    except Exception:  # an error we cannot read here is passed on unchanged
        return failed
    if isinstance(err, exceptions.TaskError) or not isinstance(err, BaseException):
        return failed
    return error_value(exceptions.TaskError(
        task_name, f"{type(err).__name__}: {err}", err, os.getpid()))
