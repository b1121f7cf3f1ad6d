"""``DeferSigint``: put off SIGINT (Ctrl-C, and ``shoal.cancel`` of a task running on
a worker's main thread) until a block of code is done.

Why: cancelling a running task raises in it at its next bytecode (section 10 of
docs/design.md); code that must not be cut in half (writing a file and renaming
it, updating two structures together) wraps the critical part::

    with DeferSigint():
        write_and_rename()
    # a cancel (or Ctrl-C) that came meanwhile lands here

Inside the block a SIGINT is only noted.  ``signal.signal(SIGINT, h)`` called
inside it does not install ``h`` at once: the last handler so set is the one
installed when the block ends (the one there before otherwise), and if a
SIGINT came, that handler is then called once.  Signals reach Python handlers
only on the main thread, so :meth:`DeferSigint.create_if_main_thread` gives a
do-nothing context elsewhere (Ray's ``ray._private.utils.DeferSigint``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Any


class DeferSigint(contextlib.AbstractContextManager):
    """Defer SIGINT to the end of the ``with`` block (main thread only)."""

    def __init__(self) -> None:
        self.signal_received = False
        self._frame: FrameType | None = None
        self._handler_after: Any = None  # what to install (and call) on exit
        self._real_signal: Any = None

    @classmethod
    def create_if_main_thread(cls) -> contextlib.AbstractContextManager:
        """A ``DeferSigint`` on the main thread, else a context that does nothing."""
        if threading.current_thread() is threading.main_thread():
            return cls()
        return contextlib.nullcontext()

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.signal_received = True
        self._frame = frame

    def _set_later(self, signum: int, handler: Any) -> Any:
        """``signal.signal`` while deferring: SIGINT's new handler waits for the exit."""
        if signum != signal.SIGINT:
            return self._real_signal(signum, handler)
        previous, self._handler_after = self._handler_after, handler
        return previous

    def __enter__(self) -> DeferSigint:
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("DeferSigint works on the main thread only (signals are "
                             "handled there); use DeferSigint.create_if_main_thread()")
        self._real_signal = signal.signal
        self._handler_after = self._real_signal(signal.SIGINT, self._note)
        signal.signal = self._set_later
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal = self._real_signal
        handler = self._handler_after
        self._real_signal(signal.SIGINT, handler)
        if self.signal_received and callable(handler):
            self.signal_received = False
            handler(signal.SIGINT, self._frame or sys._getframe(1))  # noqa: SLF001
        elif self.signal_received and handler == signal.SIG_DFL:
            raise KeyboardInterrupt
        return None
