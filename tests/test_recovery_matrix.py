"""Recovery scenarios on real clusters, each under a timeout (issue 14, part 3).

Every test starts a head with no CPUs (the driver's node) and nodes that offer the
custom resource ``x`` once: a task that needs ``x`` holds the node's only slot, so a
rebuild that waited on a leased worker for a lost argument would deadlock (the rebuild
of the argument needs that same slot).  Nodes are SIGKILLed (``remove_node``), so every
object in their stores is lost.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import shoal
from shoal.core import context
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from tests.clusters import connected_cluster
from tests.utils import open_gate, wait_for_condition, wait_for_file

MiB = 1 << 20
SIZE = 2 * MiB  # shared memory: lost with its node
NODE_TIMEOUT_S = 1.0
X_NODE = {"num_cpus": 1, "resources": {"x": 1}, "object_store_memory": 128 * MiB}


@pytest.fixture
def cluster():
    with connected_cluster(
            {"num_cpus": 0, "object_store_memory": 128 * MiB, "node_timeout_s": NODE_TIMEOUT_S},
            first=X_NODE) as c:
        yield c


def rebuilds() -> int:
    return context.current_worker_or_none().recovery.lineage.rebuilds


@shoal.remote(resources={"x": 1}, max_retries=3)
def make(fill: int) -> np.ndarray:
    return np.full(SIZE, fill, dtype=np.uint8)


@shoal.remote(resources={"x": 1}, max_retries=3)
def plus(a: np.ndarray, k: int) -> np.ndarray:
    return a + np.uint8(k)


@shoal.remote(resources={"x": 1}, max_retries=3)
def first_byte(a: np.ndarray) -> int:
    """Reads an object without copying it to the driver's node (a get would)."""
    return int(a[0])


def on_head(cluster) -> dict:
    """Actors that must outlive the killed nodes live on the head."""
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(cluster.head_node.node_id,
                                                                  soft=False)}


def replace_node(cluster, node):
    """A fresh node with ``x``, then SIGKILL ``node``: its objects are gone."""
    new = cluster.add_node(**X_NODE)
    cluster.remove_node(node)
    return new


def test_rerun_task_whose_argument_was_lost_with_the_node(cluster):
    # the reproduction: the argument is still referenced (not freed), so the
    # re-run of plus must first get make re-run, on the node plus would be leased on
    a = make.remote(1)
    b = plus.remote(a, 1)
    shoal.wait([b], timeout=30, fetch_local=False)
    replace_node(cluster, cluster.first)
    start = time.monotonic()
    assert int(shoal.get(b, timeout=60)[0]) == 2
    assert time.monotonic() - start < 30
    assert rebuilds() == 2
    assert int(shoal.get(a, timeout=30)[0]) == 1


def test_first_run_whose_argument_was_lost_with_the_node(cluster):
    # plus is submitted after its argument's node died: the leased worker hands it back
    # to the owner, who rebuilds the argument before queueing plus again
    a = make.remote(5)
    shoal.wait([a], timeout=30, fetch_local=False)
    replace_node(cluster, cluster.first)
    b = plus.remote(a, 1)
    assert int(shoal.get(b, timeout=60)[0]) == 6
    assert rebuilds() == 1


@pytest.mark.parametrize("links", [3, 10])
def test_chain_rebuilt_again_as_its_nodes_die_one_after_another(cluster, links):
    refs = [make.remote(0)]
    for _ in range(links - 1):
        refs.append(plus.remote(refs[-1], 1))
    shoal.wait([refs[-1]], timeout=60, fetch_local=False)
    node = cluster.first
    for round_ in range(1, 3):  # each round kills the node that holds every link
        node = replace_node(cluster, node)
        assert shoal.get(first_byte.remote(refs[-1]), timeout=120) == links - 1
        assert rebuilds() == round_ * links
    assert shoal.get([first_byte.remote(r) for r in refs], timeout=60) == list(range(links))


def test_node_killed_in_the_middle_of_a_recursive_rebuild(cluster, tmp_path):
    links = 10
    runs, gate = tmp_path / "runs", tmp_path / "gate"

    @shoal.remote(resources={"x": 1}, max_retries=-1)
    def gated_plus(a: np.ndarray, k: int) -> np.ndarray:
        with open(runs, "a") as f:
            f.write("run\n")
        if len(runs.read_text().splitlines()) > links // 2:
            wait_for_file(gate, timeout=60)  # holds the rebuild midway until the kill
        return a + np.uint8(k)

    open_gate(gate)
    refs = [make.remote(0)]
    for _ in range(links - 1):
        refs.append(gated_plus.remote(refs[-1], 1))
    shoal.wait([refs[-1]], timeout=60, fetch_local=False)
    runs.unlink()
    gate.unlink()
    second = replace_node(cluster, cluster.first)
    result: dict = {}
    reader = threading.Thread(target=lambda: result.setdefault(
        "value", shoal.get(first_byte.remote(refs[-1]), timeout=120)))
    reader.start()
    try:
        wait_for_condition(lambda: runs.exists() and len(runs.read_text().splitlines())
                           > links // 2, timeout=60)
        replace_node(cluster, second)  # kills the node the rebuild is running on
        open_gate(gate)
    finally:
        reader.join(150)
    assert result["value"] == links - 1
    assert rebuilds() > links  # links rebuilt on the second node were rebuilt again


def test_rebuild_while_a_borrower_waits(cluster):
    @shoal.remote(num_cpus=0)
    class Reader:
        def total(self, boxed: list) -> int:
            return int(shoal.get(boxed[0], timeout=60).sum())

    reader = Reader.options(**on_head(cluster)).remote()
    a = make.remote(1)
    b = plus.remote(a, 2)
    shoal.wait([b], timeout=30, fetch_local=False)
    replace_node(cluster, cluster.first)
    assert shoal.get(reader.total.remote([b]), timeout=60) == 3 * SIZE
    assert rebuilds() == 2


def test_rebuild_waits_for_the_only_node_with_the_resource_to_come_back(cluster):
    a = make.remote(1)
    b = plus.remote(a, 1)
    shoal.wait([b], timeout=30, fetch_local=False)
    cluster.remove_node(cluster.first)  # no node offers x now
    start = time.monotonic()
    with pytest.raises(shoal.exceptions.GetTimeoutError):
        shoal.get(b, timeout=2)
    assert time.monotonic() - start < 2 + 3  # the timeout holds during recovery
    result: dict = {}
    reader = threading.Thread(target=lambda: result.setdefault("value",
                                                                shoal.get(b, timeout=90)))
    reader.start()
    try:
        wait_for_condition(lambda: rebuilds() >= 1, timeout=30)
        cluster.add_node(**X_NODE)  # late: the rebuild has been waiting for it
    finally:
        reader.join(100)
    assert int(result["value"][0]) == 2


def test_get_with_timeout_during_a_rebuild_that_cannot_run_times_out(cluster):
    a = make.remote(1)
    b = plus.remote(a, 1)
    shoal.wait([b], timeout=30, fetch_local=False)
    cluster.remove_node(cluster.first)
    for timeout in (0.5, 1.5):
        start = time.monotonic()
        with pytest.raises(shoal.exceptions.GetTimeoutError):
            shoal.get(b, timeout=timeout)
        assert time.monotonic() - start < timeout + 2
    ready, not_ready = shoal.wait([b], timeout=0.5)
    assert not_ready == [b]


def test_rebuild_impossible_without_retries_fails_promptly(cluster):
    a = make.options(max_retries=0).remote(1)
    b = plus.remote(a, 1)
    shoal.wait([b], timeout=30, fetch_local=False)
    replace_node(cluster, cluster.first)
    start = time.monotonic()
    # b is rebuilt, but its argument cannot be: b fails with the argument's error
    with pytest.raises(shoal.exceptions.ObjectLostError, match="max_retries=0"):
        shoal.get(b)  # no timeout: it must still end
    assert time.monotonic() - start < 15


def test_rebuild_needing_a_lost_put_object_fails_promptly(cluster):
    @shoal.remote(resources={"x": 1})
    def put_there() -> list:
        return [shoal.put(np.ones(SIZE, dtype=np.uint8), _owner=keeper)]

    @shoal.remote(num_cpus=0)
    class Keeper:
        def hold(self, boxed: list) -> bool:
            self.boxed = boxed
            return True

    keeper = Keeper.options(**on_head(cluster)).remote()
    boxed = shoal.get(put_there.remote(), timeout=30)  # a put object on the first node
    b = plus.remote(boxed[0], 1)
    shoal.wait([b], timeout=30, fetch_local=False)
    replace_node(cluster, cluster.first)
    start = time.monotonic()
    with pytest.raises(shoal.exceptions.ObjectLostError, match="created by put"):
        shoal.get(b)
    assert time.monotonic() - start < 15
