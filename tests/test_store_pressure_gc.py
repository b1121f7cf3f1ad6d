"""A store filling up makes the node's processes run Python's cycle collector: refs
caught in a reference cycle are what holds the store, and a process with its
collector off (or allocating too little to run it) would keep them for ever."""

from __future__ import annotations

import pytest

import shoal
from tests.utils import wait_for_condition

pytestmark = pytest.mark.timeout(120)
MiB = 1 << 20


@shoal.remote
class CycleMaker:
    def __init__(self) -> None:
        import gc

        self.collections = 0
        gc.disable()  # only an explicit gc.collect() frees a cycle here
        gc.callbacks.append(self._count)

    def _count(self, phase: str, info: dict) -> None:
        if phase == "stop":
            self.collections += 1

    def make_cycle(self, mib: int) -> None:
        """A list that holds itself and a ref to ``mib`` MiB in the store."""
        cycle: list = [shoal.put(b"x" * (mib * MiB))]
        cycle.append(cycle)

    def collected(self) -> int:
        return self.collections


def test_a_store_past_the_pressure_mark_makes_workers_collect(shutdown_only):
    shoal.init(num_cpus=1, object_store_memory=100 * MiB)
    maker = CycleMaker.remote()
    for _ in range(3):  # 60% of the store: no pressure yet
        shoal.get(maker.make_cycle.remote(20), timeout=30)
    assert shoal.get(maker.collected.remote(), timeout=30) == 0
    shoal.get(maker.make_cycle.remote(20), timeout=30)  # 80%: past the mark (70%)
    wait_for_condition(lambda: shoal.get(maker.collected.remote(), timeout=30) > 0,
                       timeout=30, message="the actor never ran its garbage collector")
    # the cycles' refs are gone, and so are their objects
    wait_for_condition(lambda: _store_used() < 30 * MiB, timeout=30)


def _store_used() -> int:
    from shoal.util.state import list_objects

    return sum(o.object_size or 0 for o in list_objects(limit=None))
