"""A task's unfinished children, as its worker's task manager knows them (what a
recursive cancel reaches): a child is among them as soon as ``.remote()`` returned
in the parent, also from an async actor's concurrent calls, and leaves when done."""

from __future__ import annotations

import asyncio

import shoal
from shoal.core import context
from tests.gate_actor import Gate
from tests.utils import wait_for_condition


def _children_of_current_task() -> set[str]:
    worker = context.current_worker_or_none()
    me = bytes.fromhex(shoal.get_runtime_context().get_task_id())
    return {t.spec.task_id.hex() for t in worker.tasks.pending_children(me)}


@shoal.remote(num_cpus=0)
def child(gate):
    shoal.get(gate.wait.remote(), timeout=30)


@shoal.remote(num_cpus=0)
def parent(gate):
    refs = [child.remote(gate) for _ in range(3)]
    seen = _children_of_current_task()
    expected = {r.task_id().hex() for r in refs}
    gate.open.remote()
    shoal.get(refs, timeout=30)
    return seen == expected, _children_of_current_task()


@shoal.remote
class AsyncParent:
    def __init__(self):
        self.looked = 0

    async def run(self, gate):
        refs = [child.remote(gate) for _ in range(2)]
        seen = _children_of_current_task()  # the children wait for the gate
        self.looked += 1
        await asyncio.gather(*refs)
        return seen == {r.task_id().hex() for r in refs}

    def how_many_looked(self):
        return self.looked


def test_children_are_pending_right_after_remote_and_leave_when_done(shoal_cluster):
    gate = Gate.remote()
    right, after = shoal.get(parent.remote(gate), timeout=60)
    assert right and after == set()


def test_concurrent_async_calls_each_see_their_own_children(shoal_cluster):
    gate = Gate.remote()
    actor = AsyncParent.remote()
    refs = [actor.run.remote(gate) for _ in range(5)]
    wait_for_condition(lambda: shoal.get(actor.how_many_looked.remote(), timeout=30) == 5,
                       timeout=30)
    gate.open.remote()
    assert shoal.get(refs, timeout=60) == [True] * 5
