"""Reporting a task's error that nobody read.

A task that raised stores its TaskError as the value of its returns.  If the
program drops every ref to such a value without ever reading it (``get``,
``await``), the error would vanish silently; Ray logs it instead, as
"Unhandled error", when the value goes out of scope at its owner.  This module
keeps the set of returns whose error was read (``handled``) and, when an owned
error value is freed unread, calls the handler (by default: log it at ERROR).

* A ``get`` that raised marks every ref it was given: the caller saw the batch
  fail (a get fails on the first error without waiting for the rest).
* Only task errors are reported (not a cancel, a dead actor, a lost object:
  those are the system's, and the caller usually caused them), and not the
  completion ref of a streaming generator (return 0: its failure also arrives
  as an item).
* ``SHOAL_IGNORE_UNHANDLED_ERRORS=1`` (or Ray's ``RAY_IGNORE_UNHANDLED_ERRORS``),
  read at each report, turns reporting off.

The set is written by caller threads (``get``) and the loop thread (frees); a
set's ``add``/``discard`` are atomic under the GIL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from shoal import exceptions
from shoal.core import ids, serialization
from shoal.core.value_table import StoredValue

log = logging.getLogger("shoal")

IGNORE_VARIABLES = ("SHOAL_IGNORE_UNHANDLED_ERRORS", "RAY_IGNORE_UNHANDLED_ERRORS")


def log_unhandled(error: BaseException) -> None:
    """The default handler."""
    log.error("Unhandled error (suppress with 'SHOAL_IGNORE_UNHANDLED_ERRORS=1'): %s", error)


class UnhandledErrors:
    """One process's record of which error values were read."""

    def __init__(self) -> None:
        self.handled: set[bytes] = set()
        self.handler: Callable[[BaseException], None] = log_unhandled

    def read(self, oids: Iterable[bytes]) -> None:
        """A get raised with these refs in its batch."""
        self.handled.update(oids)

    def freed(self, oid: bytes, value: StoredValue) -> None:
        """An owned value went out of scope, or arrived for a ref already dropped
        (loop thread).  A ref dropped before its value came stays in ``handled``
        until then."""
        if self.handled and oid in self.handled:
            self.handled.discard(oid)
            return
        if not value.is_error:
            return
        if ids.index_of(oid) == 0 or _ignored():
            return
        try:
            error = serialization.loads_detached(value.inline.inband)
        except Exception:  # unreadable here: nothing useful to report
            return
        if not isinstance(error, exceptions.TaskError):
            return
        try:
            self.handler(error.as_instanceof_cause())
        except Exception:
            log.exception("the unhandled-error handler failed")

    def forget(self, dropped: list[bytes]) -> None:
        """Borrowed values dropped here (their owner reports them)."""
        if self.handled and dropped:
            self.handled.difference_update(dropped)


def _ignored() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in IGNORE_VARIABLES)
