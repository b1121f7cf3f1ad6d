"""Lost objects come back from lineage; tasks on dead nodes are retried
(shoal/core/lineage.py, shoal/core/recovery.py, docs/design.md section 15).

Every test starts its own cluster: a head the driver attaches to, with no CPUs
so that tasks run on the other nodes, which the tests kill (SIGKILL of the
node agent and all its workers).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import shoal
from shoal.core import context
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.clusters import connected_cluster, objects_per_node
from tests.utils import wait_for_condition

MiB = 1 << 20
NODE_TIMEOUT_S = 1.0


@pytest.fixture
def cluster():
    with connected_cluster(
            {"num_cpus": 0, "resources": {"head": 1}, "object_store_memory": 128 * MiB,
             "node_timeout_s": NODE_TIMEOUT_S},
            first={"num_cpus": 1, "object_store_memory": 128 * MiB}) as c:
        yield c


def rebuilds() -> int:
    return context.current_worker_or_none().recovery.lineage.rebuilds


def on(node, soft: bool = True) -> dict:
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=soft)}


@shoal.remote
def make(n: int, fill: int) -> np.ndarray:
    return np.full(n, fill, dtype=np.uint8)


@shoal.remote
def plus(x: np.ndarray, k: int) -> np.ndarray:
    return x + np.uint8(k)


@shoal.remote
def node_of(_x) -> str:
    return shoal.get_runtime_context().get_node_id()


def test_object_whose_node_died_is_rebuilt_by_rerunning_its_task(cluster):
    ref = make.remote(4 * MiB, 7)
    shoal.wait([ref], timeout=30)
    second = cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    x = shoal.get(ref, timeout=60)
    assert x.shape == (4 * MiB,) and int(x[0]) == 7 and int(x[-1]) == 7
    assert rebuilds() == 1
    assert shoal.get(node_of.remote(ref), timeout=30) == second.node_id


def test_a_chain_whose_links_were_all_lost_is_rebuilt_recursively(cluster):
    a = make.remote(2 * MiB, 1)
    b = plus.remote(a, 10)
    c = plus.remote(b, 100)
    shoal.wait([c], timeout=30)
    del b  # only c is needed now; b is rebuilt because c's rebuild reads it
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    x = shoal.get(c, timeout=60)
    assert int(x[0]) == 111 and int(x[-1]) == 111
    assert rebuilds() == 3
    assert int(shoal.get(a, timeout=30)[0]) == 1  # a was rebuilt on the way: no new run
    assert rebuilds() == 3


def test_borrower_get_of_a_lost_object_asks_the_owner_to_rebuild_it(cluster):
    @shoal.remote(num_cpus=0, resources={"head": 1})
    class Reader:
        def total(self, boxed: list) -> int:
            return int(shoal.get(boxed[0], timeout=60).sum())

    reader = Reader.remote()
    ref = make.remote(MiB, 3)
    shoal.wait([ref], timeout=30)
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    assert shoal.get(reader.total.remote([ref]), timeout=60) == 3 * MiB
    assert rebuilds() == 1


def test_task_with_max_retries_0_is_not_rebuilt_and_says_why(cluster):
    ref = make.options(max_retries=0).remote(MiB, 1)
    shoal.wait([ref], timeout=30)
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    with pytest.raises(shoal.exceptions.ObjectLostError, match="max_retries=0"):
        shoal.get(ref, timeout=60)


def test_a_task_whose_argument_is_lost_fails_with_its_own_task_error(cluster):
    """Ray: a lost argument is an error of the consumer (raised fetching its args), so
    its get raises a task error of the consumer, also an ObjectLostError."""
    ref = make.options(max_retries=0).remote(MiB, 1)
    shoal.wait([ref], timeout=30)
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    with pytest.raises(shoal.exceptions.TaskError) as info:
        shoal.get(plus.remote(ref, 1), timeout=60)
    assert isinstance(info.value, shoal.exceptions.ObjectLostError)
    assert isinstance(info.value.cause, shoal.exceptions.ObjectLostError)
    assert "plus" in str(info.value) and "max_retries=0" in str(info.value)


def test_a_finished_task_that_was_cancelled_is_not_rerun_to_rebuild(cluster):
    """Ray: cancel() after a task finished still counts: its lost object is not
    rebuilt, reading it raises ObjectReconstructionFailedError (in a task too)."""
    ref = make.remote(MiB, 1)
    shoal.wait([ref], timeout=30, fetch_local=False)
    shoal.cancel(ref)
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    with pytest.raises(shoal.exceptions.ObjectReconstructionFailedError, match="cancelled"):
        shoal.get(plus.remote(ref, 1), timeout=60)
    assert rebuilds() == 0


def test_lost_put_object_raises_object_lost_saying_puts_cannot_be_rebuilt(cluster):
    @shoal.remote(num_cpus=0, resources={"head": 1})
    class Keeper:
        def hold(self, boxed: list) -> bool:
            self.boxed = boxed
            return True

    @shoal.remote
    def put_for(keeper) -> list:
        # written on this (the first) node's store, owned by the keeper actor
        return [shoal.put(np.ones(MiB, dtype=np.uint8), _owner=keeper)]

    keeper = Keeper.remote()
    boxed = shoal.get(put_for.remote(keeper), timeout=30)
    # alive after its writer left (not read here: a copy on the head would survive)
    assert shoal.wait([boxed[0]], timeout=30, fetch_local=False)[0] == [boxed[0]]
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    with pytest.raises(shoal.exceptions.ObjectLostError, match="created by put"):
        shoal.get(boxed[0], timeout=60)


def test_task_running_on_a_node_that_dies_is_retried_elsewhere(cluster, tmp_path):
    started = tmp_path / "started"

    @shoal.remote(max_retries=1)
    def slow(path: str) -> str:
        if not os.path.exists(path):
            open(path, "w").close()
            import time

            time.sleep(300)  # killed with its node long before this ends
        return shoal.get_runtime_context().get_node_id()

    ref = slow.options(**on(cluster.first)).remote(str(started))
    wait_for_condition(started.exists, timeout=30)
    second = cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    assert shoal.get(ref, timeout=60) == second.node_id


def test_task_without_retries_on_a_node_that_dies_raises_node_died(cluster, tmp_path):
    started = tmp_path / "started"

    @shoal.remote(max_retries=0)
    def slow(path: str) -> None:
        open(path, "w").close()
        import time

        time.sleep(300)

    ref = slow.remote(str(started))
    wait_for_condition(started.exists, timeout=30)
    cluster.remove_node(cluster.first)
    with pytest.raises(shoal.exceptions.NodeDiedError, match="died"):
        shoal.get(ref, timeout=60)


@shoal.remote
def total_of(boxed: list) -> np.ndarray:
    """A task whose only argument is a list of refs (an actor call's answer)."""
    return np.concatenate(shoal.get(list(boxed), timeout=60))


def test_output_lost_after_its_task_finished_is_rebuilt_through_an_argument_of_refs(cluster):
    """The argument is an actor-call result whose value is a list of refs to task
    outputs: when the task finishes, the list keeps its value and its refs' rows
    (lineage), so a rebuild of the output reads the list and rebuilds the blocks
    (freed then) through their own tasks, instead of raising ObjectFreedError."""
    @shoal.remote(num_cpus=0, resources={"head": 1})
    class Echo:
        def back(self, refs: list) -> list:
            return refs  # refs inside a list argument arrive as refs

    echo = Echo.remote()
    blocks = [make.remote(MiB, 1), make.remote(MiB, 2)]
    out = total_of.remote(echo.back.remote(blocks))
    shoal.wait([out], timeout=30)
    del blocks  # only out is referenced now: the blocks' values are freed
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    x = shoal.get(out, timeout=60)
    assert x.shape == (2 * MiB,) and int(x[0]) == 1 and int(x[-1]) == 2
    assert rebuilds() == 3  # the task and both blocks


@shoal.remote
def plus_boxed(boxed: list, k: int) -> np.ndarray:
    return shoal.get(boxed[0], timeout=60) + np.uint8(k)


def test_a_freed_argument_inside_a_value_is_rebuilt_when_a_rebuild_reads_it(cluster):
    """A shuffle's map gets its input blocks inside a value (a list, a dataclass);
    once the caller drops them they are freed, and the map's lineage must still
    bring them back when its output is lost."""
    a = make.remote(2 * MiB, 1)
    c = plus_boxed.remote([a], 10)
    shoal.wait([c], timeout=30)
    del a  # only c's lineage names it now, inside the list: its value is freed
    wait_for_condition(lambda: objects_per_node(cluster)[cluster.first.node_id[:8]] == 1,
                       timeout=30, message="the unreferenced argument was not freed")
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    x = shoal.get(c, timeout=60)
    assert int(x[0]) == 11 and int(x[-1]) == 11
    assert rebuilds() == 2


@shoal.remote(num_returns="dynamic")
def blocks(n: int, fill: int):
    for i in range(n):
        yield np.full(MiB, fill + i, dtype=np.uint8)


def test_a_lost_item_of_a_dynamic_generator_is_rebuilt(cluster):
    """shoal.data's stage tasks yield their blocks (as many as the output needs);
    a block lost with its node comes back by running the generator again."""
    items = list(shoal.get(blocks.remote(3, 5), timeout=30))  # only on the first node
    assert shoal.wait(items, num_returns=3, timeout=30, fetch_local=False)[1] == []
    cluster.add_node(num_cpus=1, object_store_memory=128 * MiB)
    cluster.remove_node(cluster.first)
    assert [int(shoal.get(r, timeout=60)[-1]) for r in items] == [5, 6, 7]
    assert rebuilds() == 1  # one run made all three again
    del items[0]
    assert int(shoal.get(plus.remote(items[1], 1), timeout=30)[0]) == 8


def test_the_items_of_a_dynamic_generator_are_freed_when_dropped(cluster):
    """Its lineage entry keeps the items' ids, not refs of them: refs there kept
    the items alive for as long as the entry, which lives as long as they do."""
    first = cluster.first.node_id[:8]
    items = list(shoal.get(blocks.remote(3, 5), timeout=30))
    wait_for_condition(lambda: objects_per_node(cluster)[first] == 3, timeout=30)
    del items
    wait_for_condition(lambda: objects_per_node(cluster)[first] == 0, timeout=30,
                       message="the generator's items were not freed")
