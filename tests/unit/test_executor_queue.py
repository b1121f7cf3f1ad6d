"""The worker's queue of pipelined tasks: stealing races (no processes).

A stolen task can come back to the same worker before the main thread reaches the
stale queue entry of its first push; the stale entry must not run it nor swallow
the new push's reply.
"""

from __future__ import annotations

import threading

from shoal.core.executor import Executor
from shoal.core.retire import Retirement
from shoal.core.task_reply import ReplyStatus, TaskReply
from shoal.core.task_spec import TaskKind, TaskSpec
from shoal.rpc.transport import DeferredReply


class Recorded(DeferredReply):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list = []

    def send(self, body) -> bool:
        sent = super().send(body)
        if sent:
            self.bodies.append(body)
        return sent


def bare_executor(ran: list) -> Executor:
    ex = object.__new__(Executor)
    ex.queued = {}
    ex.queued_lock = threading.Lock()
    ex.retirement = Retirement(None, None, ex.queued)  # (max_calls: never reached here)
    ex._execute = lambda spec, conn, fut: (ran.append(fut), fut.send(["ran", spec.task_id]))
    return ex


def spec(task_id: bytes) -> TaskSpec:
    return TaskSpec(task_id, TaskKind.NORMAL, "f", b"fid", [], [], 1, "owner", "job")


def test_stale_entry_of_a_stolen_then_repushed_task_neither_runs_nor_eats_the_reply():
    ran: list = []
    ex = bare_executor(ran)
    first, second = Recorded(), Recorded()
    s = spec(b"t" * 16)
    ex.queued[s.task_id] = first  # first push: queued behind a running task
    assert ex.handle_steal_tasks(None, [s.task_id]) == [s.task_id]
    assert [TaskReply.from_wire(b).status for b in first.bodies] == [ReplyStatus.STOLEN]
    ex.queued[s.task_id] = second  # the owner pushed it here again
    ex._start_queued(s, None, first)  # main thread reaches the first push's entry
    assert ran == [] and second.bodies == []
    ex._start_queued(s, None, second)
    assert ran == [second] and second.bodies == [["ran", s.task_id]]


def test_steal_of_a_started_task_takes_nothing():
    ran: list = []
    ex = bare_executor(ran)
    reply = Recorded()
    s = spec(b"u" * 16)
    ex.queued[s.task_id] = reply
    ex._start_queued(s, None, reply)
    assert ex.handle_steal_tasks(None, [s.task_id]) == []
    assert reply.bodies == [["ran", s.task_id]]
