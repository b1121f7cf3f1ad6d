"""A worker whose task blocks in ``get`` or ``wait`` lends its CPU to the node.

The node (``WORKER_BLOCKED``) may then run another task on that CPU (starting
a worker if none is idle), so a task waiting for its children cannot starve
them; ``WORKER_UNBLOCKED`` takes the CPU back when the last blocked thread of
the worker resumes.  Only the edges are sent (several threads may block).

A get of *borrowed* objects (refs received inside a value: their owner says
where they are) waits ``BORROWED_GET_GRACE_S`` before lending: a get of blocks
that exist is answered in milliseconds, and lending the CPU for it made the
node start another worker for the next queued task (~60 MB each), so more
tasks ran at once than there are CPUs (docs/design.md section 21).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shoal.rpc.messages import Method

BORROWED_GET_GRACE_S = 0.05


class BlockedThreads:
    """The count of this worker's threads blocked in get/wait; ``notify`` sends
    WORKER_BLOCKED when the first blocks, WORKER_UNBLOCKED when the last resumes."""

    def __init__(self, notify: Callable[[Method], None]) -> None:
        self._notify = notify
        self._count = 0
        self._lock = threading.Lock()

    def set(self, blocked: bool) -> None:
        with self._lock:
            self._count += 1 if blocked else -1
            edge = (self._count == 1) if blocked else (self._count == 0)
        if edge:
            self._notify(Method.WORKER_BLOCKED if blocked else Method.WORKER_UNBLOCKED)


def wait_before_lending(waiter: Any, deadline: float | None) -> bool:
    """Wait up to the grace (or the deadline, if sooner); True if ``waiter`` is done."""
    grace = BORROWED_GET_GRACE_S if deadline is None else \
        min(BORROWED_GET_GRACE_S, max(0.0, deadline - time.monotonic()))
    return waiter.wait(grace)
