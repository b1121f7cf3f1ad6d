"""Interrupting a running task's thread without breaking the worker process.

``cancel()`` of a running task raises an exception inside the thread that runs
it: a SIGINT whose handler raises (the main thread) or
``PyThreadState_SetAsyncExc`` (any other thread).  Either lands at the thread's
next bytecode check, which may be in the middle of an import.  Raised there it
can break the process for good: right after importlib's ``_imp.acquire_lock()``
it strands the global import lock (every later import on another thread hangs:
found as a streaming_split consumer whose prefetch thread never got past
``shoal.get``), and inside an extension module's init it leaves the module half
made (a cancelled task importing pandas left a worker where ``import pandas``
raised and other threads' imports hung).

So an interrupt that finds its thread importing is put off and tried again a few
milliseconds later: a cancel waits for the import in progress (``force=True``
does not).  On the main thread this is exact, since the signal handler looks at
the very frame it interrupts.  On other threads the look and the delivery are
two steps, so a thread that caught an interrupt also hands back any import-lock
level it still holds.  A SIGINT that arrives just before the main thread enters a
blocking call (``time.sleep``) is only acted on when the call returns, so the
executor sends it again until its handler has raised.
"""

from __future__ import annotations

import _imp
import asyncio
import ctypes
import logging
import signal
import sys
from types import FrameType

log = logging.getLogger("shoal.core")

RETRY_S = 0.005  # how long to put off an interrupt that found its thread importing
RESEND_S = 0.05  # a SIGINT not acted on by then is sent again (it may have been missed)
_IMPORTLIB = "<frozen importlib"


def importing(frame: FrameType | None) -> bool:
    """True if ``frame`` or one of its callers is importlib's (an import is under way
    on that thread, maybe running the imported module's code)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_IMPORTLIB):
            return True
        frame = frame.f_back
    return False


def thread_importing(thread_id: int) -> bool:
    return importing(sys._current_frames().get(thread_id))  # noqa: SLF001 (CPython's own)


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in another thread at its next bytecode check."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exc_type))


def release_import_lock() -> int:
    """Give back every level of the global import lock this thread holds (call
    only where this thread cannot be inside an import); returns how many."""
    released = 0
    while True:
        try:
            _imp.release_lock()
        except RuntimeError:  # not held by this thread
            break
        released += 1
    if released:
        log.warning("an interrupted task left the import lock held (%d levels): released",
                    released)
    return released


class TaskInterrupter:
    """Interrupts the thread running a cancelled sync task, by the rules above.

    ``running`` (task id -> thread ident) and ``cancelled`` are the executor's
    own; ``raised`` are the cancelled tasks whose interrupt was raised (cleared by
    ``finished``).  ``interrupt`` runs on the io thread, ``should_raise`` in the
    main thread's SIGINT handler.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, main_thread_id: int,
                 running: dict, cancelled: set, exc_type: type[BaseException]) -> None:
        self.loop, self.main_thread_id = loop, main_thread_id
        self.running, self.cancelled, self.exc_type = running, cancelled, exc_type
        self.raised: set[bytes] = set()

    def interrupt(self, task_id: bytes, thread_id: int) -> None:
        if (task_id not in self.cancelled or task_id in self.raised
                or self.running.get(task_id) != thread_id):
            return  # finished meanwhile, or the interrupt was raised
        if thread_importing(thread_id):
            self.loop.call_later(RETRY_S, self.interrupt, task_id, thread_id)
        elif thread_id == self.main_thread_id:
            # At the main thread itself (sent to the process, it may go to another
            # thread and leave the main one asleep), and again until it is raised.
            signal.pthread_kill(thread_id, signal.SIGINT)
            self.loop.call_later(RESEND_S, self.interrupt, task_id, thread_id)
        else:
            raise_in_thread(thread_id, self.exc_type)

    def should_raise(self, task_id: bytes, frame: FrameType | None) -> bool:
        """In the SIGINT handler: raise now for ``task_id``?  Not inside an import
        (``interrupt`` sends the signal again)."""
        if task_id not in self.cancelled or importing(frame):
            return False
        self.raised.add(task_id)
        return True

    def finished(self, task_id: bytes) -> None:
        self.raised.discard(task_id)
