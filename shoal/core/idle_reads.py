"""A sync actor's main thread reads its callers' connections while it is idle.

Otherwise a call wakes two threads in the actor's process: the io loop (epoll)
reads the PUSH_TASK and hands it to the main thread (a queue), and each
wake-up of a thread on an idle vCPU costs ~35 us on this VM.  Here the main
thread, with nothing queued, takes the reads of every caller connection
(:mod:`shoal.rpc.read_lending`), polls them, and runs the calls it reads
itself.  Everything else it reads (cancels, reference counting, object
requests) goes to the loop, in order.  It gives the reads back before it runs
anything, so the loop reads while a method runs (a cancel must get through):
at once after a single call (a sync caller), within a loop tick after a burst
(an async caller: the main thread will read again before the loop would, and
re-arming on every round cost 20% of 1:1 async throughput).

Order of one caller's calls: the main thread reads only after taking the
reads *and* finding its queue empty, so anything the loop queued came earlier
on the wire; calls it read run before anything queued later.
"""

from __future__ import annotations

import collections
import os
import queue
import select
from typing import TYPE_CHECKING

from shoal.rpc.messages import Method
from shoal.rpc.protocol import Kind
from shoal.rpc.read_lending import ReadLending

if TYPE_CHECKING:
    from shoal.core.core_worker import CoreWorker
    from shoal.rpc.transport import Connection


class IdleReads:
    def __init__(self, worker: CoreWorker, main_queue: queue.SimpleQueue) -> None:
        """Loop thread (the epoll set is watched by the loop)."""
        self.worker = worker
        self.loop = worker.loop  # running: we are built on it
        self.main_queue = main_queue
        self.lending = ReadLending(self.loop)
        self.conns: tuple = ()  # replaced, never mutated: the main thread reads it
        self.calls: collections.deque = collections.deque()  # (conn, request id, body)
        self.polling = False
        self._rearm_pending = False
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        worker.router.on_open.append(self._opened)
        worker.router.on_close.append(self._closed)

    # ---- loop thread ---------------------------------------------------------------------
    def _opened(self, conn: Connection) -> None:
        # after the receive that completed the handshake: it may still dispatch
        self.loop.call_soon(self._watch, conn)

    def _watch(self, conn: Connection) -> None:
        if conn.lend_reads(self.lending):
            self.conns = (*self.conns, conn)

    def _closed(self, conn: Connection) -> None:
        if conn in self.conns:
            self.conns = tuple(c for c in self.conns if c is not conn)

    # ---- any thread --------------------------------------------------------------------------
    def wake(self) -> None:
        """Something was queued for the main thread: interrupt its poll."""
        if self.polling:
            os.eventfd_write(self._wake_fd, 1)

    # ---- main thread ---------------------------------------------------------------------------
    def wait(self) -> None:
        """Idle: read the callers' connections until calls are read (``self.calls``)
        or the queue has something."""
        taken = [c for c in self.conns if c.take_reads()]
        try:
            self.polling = True
            if not self.main_queue.empty():
                return
            poller = select.poll()
            poller.register(self._wake_fd, select.POLLIN)
            by_fd = {}
            for conn in taken:
                fd = conn.read_fileno()
                by_fd[fd] = conn
                poller.register(fd, select.POLLIN)
            for fd, _events in poller.poll():
                if fd == self._wake_fd:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
                else:
                    self._read(by_fd[fd])
        finally:
            self.polling = False
            # One call read: a sync caller, who waits for the reply; the loop must
            # watch again at once (two syscalls).  Several: a burst, more will
            # come before they are run, so the main thread takes the reads back
            # without the loop ever seeing them (the loop re-arms within a tick).
            eager = len(self.calls) <= 1
            for conn in taken:
                conn.give_back_reads(rearm=eager)
            if taken and not eager and not self._rearm_pending:
                self._rearm_pending = True
                self.worker.post_lazy(self._rearm)

    def _rearm(self) -> None:
        """Loop thread, within a tick of the main thread letting go: watch the
        connections it is not reading again (it has likely taken them back by now, a
        sync call later; if it runs a long method, the loop reads for it)."""
        self._rearm_pending = False
        for conn in self.conns:
            conn.rearm_if_free()

    def _read(self, conn: Connection) -> None:
        calls = self.calls

        def keep(message) -> bool:
            if message[0] == Kind.REQUEST and message[2] == Method.PUSH_TASK:
                calls.append((conn, message[1], message[3]))
                return True
            return False

        # calls are kept even after something went to the loop: one the loop got
        # would reach the main queue only after this thread's next read
        conn.read_sorted(keep, self.worker.post, keep_after_handing=True)
