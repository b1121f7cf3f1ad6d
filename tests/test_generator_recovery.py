"""Streamed items lost while their generator task is retried or still running come
back from the generator's next run (Ray's semantics: a re-run's yields of items the
caller already has are ignored, except for those lost, whose new values are kept);
a large argument passed by value outlives its task while lineage may re-run it
(shoal/core/task_manager.py ``rebuild_while_running``, ``_repeated_item``;
docs/design.md section 22, sixth increment).

Each test starts its own cluster: a head without CPUs and nodes with a custom
resource of their own name, so tasks land where the test kills them.
"""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from tests.clusters import connected_cluster
from tests.utils import wait_for_file

MiB = 1 << 20
STORE = 128 * MiB


@pytest.fixture
def cluster():
    with connected_cluster(
            {"num_cpus": 0, "object_store_memory": STORE, "node_timeout_s": 1.0},
            first={"num_cpus": 1, "resources": {"producer": 1}, "object_store_memory": STORE},
            second={"num_cpus": 1, "resources": {"consumer": 1},
                    "object_store_memory": STORE}) as c:
        yield c


@shoal.remote(num_returns="streaming", max_retries=2, resources={"producer": 1})
def produce(n: int, hold_before: int, go_file: str):
    for i in range(n):
        if i == hold_before:
            wait_for_file(go_file, timeout=60)
        yield np.full(MiB, i, dtype=np.uint8)


@shoal.remote(resources={"consumer": 1})
def consume(x: np.ndarray) -> np.ndarray:
    return x.copy()


def test_items_lost_with_a_running_generator_come_from_its_retry(cluster, tmp_path):
    go = str(tmp_path / "go")
    gen = produce.remote(4, 3, go)
    items = [next(gen) for _ in range(3)]  # the run then waits for `go`
    cluster.add_node(num_cpus=1, resources={"producer": 1}, object_store_memory=STORE)
    cluster.remove_node(cluster.first)  # the run and the items' only copies die
    open(go, "w").close()
    # the retry yields items 0-2 again: their values are kept, as the lost ones
    assert [int(shoal.get(r, timeout=60)[0]) for r in items] == [0, 1, 2]
    assert int(shoal.get(next(gen), timeout=60)[0]) == 3


def test_an_item_a_lost_result_was_made_from_is_made_again_while_its_generator_runs(
        cluster, tmp_path):
    go = str(tmp_path / "go")
    gen = produce.remote(3, 1, go)  # yields item 0, then waits for `go`
    result = consume.remote(next(gen))  # item 0's ref is dropped: only lineage has it
    assert shoal.wait([result], timeout=60, fetch_local=False)[0] == [result]
    cluster.add_node(num_cpus=1, resources={"consumer": 1}, object_store_memory=STORE)
    cluster.remove_node(cluster.second)  # the result's only copy dies
    # rebuilding the result needs item 0 again: the generator's next run makes it
    open(go, "w").close()
    assert [int(shoal.get(r, timeout=60)[0]) for r in gen] == [1, 2]
    assert int(shoal.get(result, timeout=60)[0]) == 0


def test_a_large_argument_passed_by_value_outlives_its_task_for_a_rebuild(cluster):
    result = consume.remote(np.full(MiB, 9, dtype=np.uint8))  # stored by value, then freed
    assert shoal.wait([result], timeout=60, fetch_local=False)[0] == [result]
    cluster.add_node(num_cpus=1, resources={"consumer": 1}, object_store_memory=STORE)
    cluster.remove_node(cluster.second)
    assert int(shoal.get(result, timeout=60)[-1]) == 9


@shoal.remote(resources={"producer": 1}, max_task_retries=-1)
class _Producer:
    def __init__(self) -> None:
        self.runs = 0

    def produce(self, n: int):
        self.runs += 1
        for i in range(n):
            yield np.full(MiB, i, dtype=np.uint8)

    def count(self) -> int:
        return self.runs


def test_an_actor_call_with_retries_is_rerun_to_make_a_freed_item_again(cluster):
    """Ray keeps the lineage of an actor call that may be retried
    (max_task_retries): a lost result made from its item re-runs the call."""
    producer = _Producer.remote()
    gen = producer.produce.options(num_returns="streaming").remote(2)
    result = consume.remote(next(gen))  # item 0's ref is dropped: only lineage has it
    assert [int(shoal.get(r, timeout=60)[0]) for r in gen] == [1]
    assert shoal.wait([result], timeout=60, fetch_local=False)[0] == [result]
    cluster.add_node(num_cpus=1, resources={"consumer": 1}, object_store_memory=STORE)
    cluster.remove_node(cluster.second)  # the result's only copy dies
    assert int(shoal.get(result, timeout=60)[0]) == 0
    assert shoal.get(producer.count.remote(), timeout=60) == 2
