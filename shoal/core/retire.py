"""``max_calls``: a worker leaves after running a function that many times.

Theory of operation
-------------------
Ray's ``@remote(max_calls=N)``: the worker process that has run the function N
times must not run anything more, and exits, so that what the function leaks
(memory, GPU state) goes with it.  It may not exit while it *owns* an object
still in scope (an object it ``put`` and returned, which its caller borrows):
the owner's exit would lose it.  So retiring is two steps::

    owner                        worker (Retirement)              node agent
      | PUSH_TASK (Nth call) --> | runs it; retiring from now on
      | <-- reply (retire) ----  | later PUSH_TASKs: STOLEN (handed back)
      | drops the lease from its workers; requeues what comes back
      | RETURN_LEASE(lease, retire=True) -------------------------> | lease RETIRING,
      |                          |                                   | resources back,
      |                          | <------------- RETIRE_WORKER ---- | never idle again
      |                          | exits once it owns nothing in scope
      |                          |   (ReferenceTable.owns_in_scope, polled on its loop)

The count is per function, as Ray's; actor tasks are not counted.  A PUSH_TASK
already on its way when the owner read the reply is handed back as well; one
that crosses the exit (rare: it must arrive after the agent's message) fails
over to the worker-death path and uses a retry.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from shoal.core.task_reply import TaskReply
from shoal.core.task_spec import TaskKind, TaskSpec

if TYPE_CHECKING:
    from shoal.core.links import Links
    from shoal.core.reference_table import ReferenceTable

log = logging.getLogger("shoal.core")

EXIT_CHECK_S = 0.05  # how often a retired worker checks whether it may exit


class Retirement:
    """One worker's ``max_calls`` count and its retirement."""

    def __init__(self, links: Links | None, references: ReferenceTable | None,
                 queued: dict) -> None:
        self.links = links  # the io loop: where the exit check runs
        self.references = references  # the objects this worker owns
        self.queued = queued  # the executor's tasks not started (handed back, not run)
        self.calls: dict[bytes, int] = {}  # function id -> times run here
        self.retiring = False  # max_calls reached: run nothing more

    def ran(self, spec: TaskSpec, reply: TaskReply) -> None:
        """Main thread, after a task: count it; the call that reaches max_calls tells
        its owner (the reply's ``retire``) to give the lease back."""
        if spec.max_calls <= 0 or spec.kind is not TaskKind.NORMAL:
            return
        count = self.calls[spec.function_id] = self.calls.get(spec.function_id, 0) + 1
        if count >= spec.max_calls and not self.retiring:
            self.retiring = True
            reply.retire = True

    def handle_retire_worker(self, conn, body) -> None:
        """From the agent: the lease is returned; leave once nothing owned is in scope."""
        self.retiring = True
        self.links.loop.call_soon(self._exit_when_unowned)

    def _exit_when_unowned(self) -> None:
        if self.references.owns_in_scope() or self.queued:
            self.links.loop.call_later(EXIT_CHECK_S, self._exit_when_unowned)
            return
        log.info("leaving after max_calls: this worker owns nothing in scope")
        os._exit(0)
