"""Deleting freed spill files: the performer of :mod:`.deferred_deletes`.

The store tells it which files nobody needs (``freed``) and when its spill
writes and restores start and end (``io_started`` / ``io_ended``); it deletes
the files the policy says are due, one at a time, on a thread of its own, and
sets a timer for when the next ones fall due.  Event-loop thread only, but
for the delete thread's completion callback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

from shoal.node.object_store import spill_io
from shoal.node.object_store.deferred_deletes import DeferredDeletes


class SpillFileDeleter:
    def __init__(self, room: Callable[[], int]) -> None:
        self.room = room  # free bytes in the spill directories
        self.deletes = DeferredDeletes()
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shoal-unlink")
        self.io_in_flight = 0  # the store's spill writes and restores running
        self._idle_since = time.monotonic()  # when the last of them ended
        self._deleting = False  # a file's delete is running on the thread
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def freed(self, path: str, size: int) -> None:
        self.deletes.add(path, size, time.monotonic())
        self._run()

    def delete_now(self, path: str) -> None:
        """A file that was never in use (a disk-backed object nobody took)."""
        self.thread.submit(spill_io.delete, path)

    def everything(self) -> None:
        """All waiting files, at once: a spill found no room."""
        for path in self.deletes.take_all():
            self.thread.submit(spill_io.delete, path)

    def io_started(self) -> None:
        self.io_in_flight += 1

    def io_ended(self) -> None:
        self.io_in_flight -= 1
        if self.io_in_flight == 0:
            self._idle_since = time.monotonic()
            if len(self.deletes):
                self._run()

    def _run(self) -> None:
        """Delete the next file that is due, the one after when it is done (if
        still due); else look again when the next ones fall due."""
        if self.closed or self._deleting:
            return
        now = time.monotonic()
        idle_since = self._idle_since if self.io_in_flight == 0 else None
        path = self.deletes.next_path(now, idle_since, self.room())
        loop = asyncio.get_running_loop()
        if path is not None:
            self._deleting = True
            future = self.thread.submit(spill_io.delete, path)
            future.add_done_callback(lambda _: _call_soon(loop, self._deleted))
            return
        due = self.deletes.next_due(idle_since)
        if self._timer is not None and self._timer.when() > \
                (due if due is not None else float("inf")) + 0.001:
            self._timer.cancel()  # falls due sooner now (the disk went quiet)
            self._timer = None
        if due is not None and self._timer is None:
            self._timer = loop.call_at(loop.time() + max(0.0, due - now), self._timer_fired)

    def _deleted(self) -> None:
        self._deleting = False
        self._run()

    def _timer_fired(self) -> None:
        self._timer = None
        self._run()

    def close(self) -> None:
        """Stop (the store removes its spill folders itself)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.thread.shutdown(wait=True, cancel_futures=True)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the loop is closed: the store stopped meanwhile
        pass
