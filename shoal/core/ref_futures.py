"""Waiting for an object without a thread per object: ``ObjectRef.future()``,
``await ref`` and ``ref._on_completed(callback)``.

A waiter on the value table fires (on the loop thread) when the value arrives;
the read and the user's callback then run on a few shared daemon threads, never
on the loop thread (a callback may submit tasks or call ``get``).  A borrowed
ref's value is fetched from its owner as ``get`` would.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("shoal.core")

CALLBACK_THREADS = 4  # a callback that blocks holds up only its own thread


class _CallbackThreads:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None

    def submit(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                for i in range(CALLBACK_THREADS):
                    threading.Thread(target=self._run, args=(self._queue,), daemon=True,
                                     name=f"shoal-ref-callback-{i}").start()
        self._queue.put(fn)

    @staticmethod
    def _run(q: queue.SimpleQueue) -> None:
        while True:
            fn = q.get()
            try:
                fn()
            except Exception:
                # as text: a log record holding the traceback would keep the callback
                # (and what it closes over) alive for as long as a handler keeps records
                log.error("an object's completion callback raised:\n%s",
                          traceback.format_exc())
            del fn


_threads = _CallbackThreads()


class _Sessions:
    """Which workers' completion callbacks may still start, and which run now: a
    session's shutdown stops new ones and waits for the running ones, so none of
    them calls ``.remote()`` after it (that would auto-init a new cluster)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.closed: weakref.WeakSet = weakref.WeakSet()  # workers shutting down
        self.running: dict[int, set[threading.Thread]] = {}

    def start(self, worker: Any) -> bool:
        with self.cond:
            if worker in self.closed or worker.shutting_down:
                return False
            self.running.setdefault(id(worker), set()).add(threading.current_thread())
            return True

    def end(self, worker: Any) -> None:
        with self.cond:
            self.running.get(id(worker), set()).discard(threading.current_thread())
            self.cond.notify_all()

    def close(self, worker: Any, timeout: float) -> None:
        me = threading.current_thread()
        with self.cond:
            self.closed.add(worker)
            self.cond.wait_for(lambda: not (self.running.get(id(worker), set()) - {me}),
                               timeout)
            self.running.pop(id(worker), None)


_sessions = _Sessions()


def close_callbacks(worker: Any, timeout: float = 2.0) -> None:
    """The session of ``worker`` ends: no completion callback of it starts from now
    on; wait (up to ``timeout``) for those running to return."""
    _sessions.close(worker, timeout)


def when_ready(worker: Any, ref: Any, fn: Callable[[], None]) -> None:
    """Run ``fn()`` on a callback thread once ``ref`` has a value here (an error
    counts), at once if it already has one."""
    oid = ref.object_id

    def arrived(_oid: bytes, _value: Any) -> None:
        _threads.submit(fn)

    if worker.value_table.add_waiter(oid, arrived) is not None:
        _threads.submit(fn)
        return
    worker.ask_for_values([ref])


def future(worker: Any, ref: Any) -> concurrent.futures.Future:
    """A concurrent future that completes with the value (or the task's error)."""
    out: concurrent.futures.Future = concurrent.futures.Future()

    def read() -> None:
        if not out.set_running_or_notify_cancel():
            return
        try:
            out.set_result(worker.get([ref], None)[0])
        except BaseException as exc:
            out.set_exception(exc)

    when_ready(worker, ref, read)
    return out


def on_completed(worker: Any, ref: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback(value)`` once the object is ready; with the exception as its
    argument if the object is an error.  Not once the worker has shut down: the
    callback belongs to that session (its ``.remote()`` calls would otherwise start
    a new cluster by auto-init)."""
    def run() -> None:
        if not _sessions.start(worker):
            return
        try:
            try:
                value = worker.get([ref], None)[0]
            except BaseException as exc:
                value = exc
            try:
                callback(value)
            finally:
                value = None  # an error's traceback holds this frame: no cycle
        finally:
            _sessions.end(worker)

    when_ready(worker, ref, run)
