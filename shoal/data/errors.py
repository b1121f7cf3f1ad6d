"""The errors shoal.data raises (Ray Data's names where Ray has one)."""

from __future__ import annotations


class UserCodeException(Exception):
    """A user function (map, map_batches, filter, ...) raised.  The message names
    the operator and the rows it was given; the original exception is the
    ``__cause__`` and its traceback travels with the task's error."""


class DataError(ValueError):
    """Bad data met while running a plan: schemas that cannot be combined, a
    function returning the wrong shape of batch."""
