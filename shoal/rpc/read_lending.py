"""Lending a connection's reads to the thread that waits for its reply.

A caller blocked in ``get`` on an actor call costs two thread wake-ups per call
when the io loop reads the reply: the loop's thread (woken by epoll), then the
caller (woken by the loop).  On this VM each wake-up of a thread on an idle
vCPU costs ~35 us, about a tenth of a sync call.  A *lendable* connection lets
the waiting thread read the socket itself, so only that thread wakes.

Who may read: whoever holds the connection's read lock, the loop or one
borrowing thread.  The loop no longer reads through its transport (reading is
paused there; writes still go through it).  It watches a duplicate of the
socket in a private epoll set, registered with EPOLLONESHOT and itself watched
by the loop (``ReadLending``): one ``epoll_ctl`` from any thread disarms it,
which the loop's own readers cannot offer across threads.

    borrower (user thread)              loop
    take read lock (or give up)
    disarm                              (a readiness it already took finds the
    poll + recv + decode                 lock held and drops it: disarmed)
    its reply: ``on_early`` stores the value; the rest of the reply's handling
      is queued for the loop (``post_lazy``)
    anything else: handed to the loop in order (``post``); stop borrowing
    release lock, re-arm                readiness again: loop reads as before

Every holder re-arms after releasing the lock, so a readiness the loop took
while the lock was held is never lost.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from shoal.rpc import protocol
from shoal.rpc.protocol import Kind

ARMED = select.EPOLLIN | select.EPOLLONESHOT
DISARMED = select.EPOLLONESHOT  # no events; a pending readiness is dropped
READ_SIZE = 256 * 1024
POLL_CHECK_S = 1.0  # a borrower re-checks its wait this often (belt and braces)

# How long a reading thread polls without sleeping before it blocks.  A thread
# that sleeps in poll() must be woken by the sender's kernel, which on a VM
# whose idle vCPUs halt in the host costs the sender ~35-75 us per message; a
# sync call's answer usually comes within ~150 us.  0 turns spinning off.
SPIN_S = float(os.environ.get("SHOAL_SPIN_US", "200")) / 1e6


def spin_poll(poller: select.poll) -> list:
    """Poll without sleeping for up to SPIN_S: the ready (fd, events), or [].

    Each poll(0) releases the GIL, so the process's other threads run meanwhile;
    the cost is at most SPIN_S of one vCPU per wait."""
    if SPIN_S <= 0:
        return []
    clock = time.perf_counter
    end = clock() + SPIN_S
    while clock() < end:
        ready = poller.poll(0)
        if ready:
            return ready
    return []


class ReadLending:
    """One process loop's watch over the lendable connections' sockets."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self._epoll = select.epoll()
        self._conns: dict[int, Any] = {}
        loop.add_reader(self._epoll.fileno(), self._ready)

    def add(self, conn) -> None:
        fd = conn.read_fileno()
        self._conns[fd] = conn
        self._epoll.register(fd, ARMED)

    def remove(self, conn) -> None:
        fd = conn.read_fileno()
        if self._conns.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def set(self, conn, events: int) -> None:
        try:
            self._epoll.modify(conn.read_fileno(), events)
        except (OSError, ValueError):  # closed meanwhile
            pass

    def _ready(self) -> None:
        for fd, _events in self._epoll.poll(0):
            conn = self._conns.get(fd)
            if conn is not None:
                conn.read_on_loop()

    def close(self) -> None:
        try:
            self.loop.remove_reader(self._epoll.fileno())
        except Exception:
            pass
        self._epoll.close()


class LendableReads:
    """Mixed into :class:`~shoal.rpc.transport.Connection`."""

    _lending: ReadLending | None = None
    _rsock: socket.socket | None = None
    _reads_closed = False
    _armed = False  # the loop watches it (may lag: a spent ONESHOT still reads True)

    def lend_reads(self, lending: ReadLending) -> bool:
        """Loop thread: read this connection through ``lending`` from now on.  False if
        it cannot (closed, or lent to another already)."""
        if self._lending is not None or not self.is_open():
            return self._lending is lending
        fd = self.transport.get_extra_info("socket").fileno()
        self._rsock = socket.socket(fileno=os.dup(fd))
        self._rsock.setblocking(False)
        self._rlock = threading.Lock()
        self._rpoll = select.poll()
        self._rpoll.register(self._rsock.fileno(), select.POLLIN)
        self._lending = lending
        self.transport.pause_reading()
        lending.add(self)
        self._armed = True
        return True

    def read_fileno(self) -> int:
        """The descriptor lent reads poll (a duplicate of the transport's socket)."""
        return self._rsock.fileno()

    def _recv(self) -> bytes | None:
        """None if nothing is there yet; empty bytes at end of stream or on a socket
        error."""
        try:
            return self._rsock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def read_on_loop(self) -> None:
        if not self._rlock.acquire(False):
            return  # a borrower reads; it re-arms when it is done
        try:
            data = self._recv()
            if data:
                self.data_received(data)
        finally:
            self._rlock.release()
        if data == b"":
            self._reader_eof()
        else:
            self._rearm()

    def _rearm(self) -> None:
        if not self._reads_closed:
            self._lending.set(self, ARMED)
            self._armed = True

    def rearm_if_free(self) -> None:
        """Loop thread: watch the connection again unless a thread reads it now."""
        if not self._armed and self._rlock.acquire(False):
            try:
                self._rearm()
            finally:
                self._rlock.release()

    def _reader_eof(self) -> None:
        """Loop thread: the peer closed (the transport, not reading, cannot see it)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _dispatch_lent(self, messages: list) -> None:
        """Loop thread: messages a borrower read and handed over, in order."""
        try:
            for message in messages:
                self._dispatch(message)
        except protocol.ProtocolError as exc:
            self._fail_handshake(exc)
            self.close()

    def _close_reads(self) -> None:
        """Loop thread, on connection loss: stop watching; wake a borrower (shutdown,
        since closing an fd does not wake a thread polling it); the last holder of
        the read lock closes the duplicate socket."""
        if self._lending is None or self._reads_closed:
            return
        self._reads_closed = True
        self._lending.remove(self)
        try:
            self._rsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._close_rsock_if_free()

    def _close_rsock_if_free(self) -> None:
        if self._rlock.acquire(False):
            try:
                if self._rsock is not None:
                    self._rsock.close()
            finally:
                self._rlock.release()

    # ---- any thread: borrowing the reads ------------------------------------------------
    def take_reads(self) -> bool:
        """Become this connection's reader (False: not lendable, closed, or another
        thread reads it); the loop stops watching it until ``give_back_reads``."""
        if self._lending is None or self._reads_closed or not self._rlock.acquire(False):
            return False
        if self._armed:
            self._armed = False
            self._lending.set(self, DISARMED)
        return True

    def give_back_reads(self, rearm: bool = True) -> None:
        """Stop reading.  Without ``rearm`` the loop does not watch the connection
        until someone calls ``rearm_if_free`` (saves two syscalls when this thread
        will soon read again)."""
        self._rlock.release()
        if self._reads_closed:
            self._close_rsock_if_free()
        elif rearm:
            self._rearm()

    def _read_messages(self) -> list | None:
        """The reader: receive what is there and decode it.  None at end of stream
        (the loop is told); raises ProtocolError on garbage."""
        data = self._recv()
        if data is None:
            return []
        if not data:
            return None
        self.decoder.feed(data)
        return list(self.decoder.messages())

    def read_in_thread(
        self,
        request_id: int,
        on_early: Callable[[Any], bool],
        done: Callable[[], bool],
        deadline: float | None,
        post: Callable,
        post_lazy: Callable,
    ) -> None:
        """Read this connection on the calling thread until ``done()``, the deadline,
        or a message it must hand to the loop.  The reply to ``request_id`` is given
        to ``on_early`` (which returns False if the loop must handle it whole); the
        answer's own callback is then queued with ``post_lazy``.  Both ``post`` and
        ``post_lazy`` must run their commands on the loop before it handles this
        connection's next received data (the core worker's command queue, drained by
        ``Router.before_receive``): that keeps the messages in order.  Returns at once
        if the connection is not lendable or another thread reads it."""
        if not self.take_reads():
            return
        try:
            while not done():
                wait_ms = POLL_CHECK_S * 1000
                if deadline is not None:
                    wait_ms = min(wait_ms, max(0.0, deadline - time.monotonic()) * 1000)
                spun = spin_poll(self._rpoll) if wait_ms > SPIN_S * 1000 else []
                if not spun and not self._rpoll.poll(wait_ms):
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    continue
                if not self._take_reply(request_id, on_early, post, post_lazy):
                    return
        finally:
            self.give_back_reads()

    def _take_reply(self, request_id: int, on_early, post, post_lazy) -> bool:
        """One read on the borrowing thread; False once something went to the loop."""

        def keep(message) -> bool:
            if (message[0] != Kind.RESPONSE or message[1] != request_id
                    or not on_early(message[2])):
                return False
            answer = self._pending.pop(request_id, None)
            if answer is not None:
                post_lazy(answer.set_result, message[2])
            return True

        return self.read_sorted(keep, post, keep_after_handing=False)

    def read_sorted(self, keep: Callable[[list], bool], post: Callable,
                    keep_after_handing: bool) -> bool:
        """The reader: one receive.  Messages ``keep`` takes stay with the reader;
        the rest go to the loop in order, as do end of stream and garbage.  Without
        ``keep_after_handing`` nothing after the first handed-over message is
        offered to ``keep``.  False once something went to the loop."""
        handed: list = []
        try:
            messages = self._read_messages()
            if messages is None:
                post(self._reader_eof)
                return False
            for message in messages:
                if (keep_after_handing or not handed) and keep(message):
                    continue
                handed.append(message)
        except protocol.ProtocolError as exc:
            self._hand_over(handed, post)
            post(self._broken_by_reader, exc)
            return False
        self._hand_over(handed, post)
        return not handed

    def _hand_over(self, messages: list, post: Callable) -> None:
        """Give messages a borrower read to the loop, to handle in order."""
        if messages:
            post(self._dispatch_lent, messages)

    def _broken_by_reader(self, exc: Exception) -> None:
        self._fail_handshake(exc)
        self.close()
