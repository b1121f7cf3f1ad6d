"""A user thread's STORE_GET to its node, sent and read on that thread.

A ``get`` of an object in the local store is one STORE_GET round trip to the
node agent.  Through the io loop it cost the user thread two hand-offs (the
loop sends, the loop reads the reply and wakes the user thread), each a
thread wake-up of ~35 us on an idle vCPU of this VM and more under load.
Here the user thread writes the request itself and borrows the connection's
reads for the reply (:mod:`shoal.rpc.read_lending`); whatever else it reads
goes to the loop in order.  When it cannot borrow the reads (another thread
reads), the loop delivers the reply as before.

A caller that stops waiting (its timeout) leaves the pins of a late reply to
the loop, which gives them back (STORE_RELEASE), as the loop path does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shoal.rpc.messages import Method


class ThreadPin:
    """One STORE_GET sent from a user thread: the reply, however it comes."""

    __slots__ = ("_lock", "_done", "_body", "_error", "_abandoned", "_oids", "_conn",
                 "_give_back")

    def __init__(self, conn: Any, oids: list[bytes],
                 give_back: Callable[[Any, list[bytes]], None]) -> None:
        """``give_back(answer, oids)`` (loop) releases what a late answer pinned."""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._body: Any = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._oids = oids
        self._conn = conn
        self._give_back = give_back

    def run(self, timeout: float | None, post: Callable, post_lazy: Callable) -> list:
        """The agent's answer: ``[offset, size]`` (pinned for us) or None per oid.
        Raises TimeoutError past ``timeout``, or the call's error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self._conn
        request_id = conn.call_from_thread(Method.STORE_GET, self._oids, self._on_reply)
        conn.read_in_thread(request_id, self._early, self._done.is_set, deadline, post,
                            post_lazy)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._done.wait(remaining):
            with self._lock:
                if not self._done.is_set():
                    self._abandoned = True
                    raise TimeoutError
        if self._error is not None:
            raise self._error
        return self._body

    def _early(self, body: Any) -> bool:
        """Reading thread: the reply came to us."""
        with self._lock:
            self._body = body
            self._done.set()
        return True

    def _on_reply(self, answer: Any) -> None:
        """Loop: the reply (already taken by the reader, or not), or the loss of
        the connection."""
        with self._lock:
            if self._done.is_set():
                return
            if not self._abandoned:
                self._error = answer.exception()
                if self._error is None:
                    self._body = answer.result()
                self._done.set()
                return
        self._give_back(answer, self._oids)  # the caller left
