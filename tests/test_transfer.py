"""Objects move between nodes: pulls in chunks between node agents, admission
control against the store's capacity, and secondary copies tracked and freed
by the owner (shoal/node/object_transfer.py, shoal/core/object_locations.py).

One cluster for the module: a head (the driver's node), a node "n1" and a node
"small" whose store holds only two of the objects pulled into it at a time.
"""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from shoal.cluster_utils import Cluster
from tests.clusters import connected_cluster, store_stats
from tests.utils import wait_for_condition

MiB = 1 << 20
SMALL_STORE = 48 * MiB
OBJECT = 20 * MiB  # two fit in SMALL_STORE, three do not


@pytest.fixture(scope="module")
def cluster():
    with connected_cluster(
            {"num_cpus": 1, "resources": {"head": 1}, "object_store_memory": 256 * MiB},
            n1={"num_cpus": 1, "resources": {"n1": 1}, "object_store_memory": 256 * MiB},
            small={"num_cpus": 1, "resources": {"small": 1},
                   "object_store_memory": SMALL_STORE}) as c:
        yield c


@shoal.remote
class Reader:
    def node(self) -> str:
        return shoal.get_runtime_context().get_node_id()

    def read(self, boxed: list) -> tuple[float, bool, bool]:
        """get() a ref owned elsewhere, whose copy is on another node."""
        x = shoal.get(boxed[0], timeout=30)
        return float(x.sum()), x.flags.writeable, x.flags.owndata

    def make(self, n: int) -> np.ndarray:
        return np.full(n, 3, dtype=np.uint8)


@shoal.remote
def total_and_node(x: np.ndarray) -> tuple[float, str]:
    return float(x.sum()), shoal.get_runtime_context().get_node_id()


# Runs before the module's shared cluster starts (module fixtures start on first use).
def test_get_of_an_object_whose_only_node_died_raises_object_lost():
    if shoal.is_initialized():
        shoal.shutdown()
    with Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": 64 * MiB}) as c:
        node = c.add_node(num_cpus=1, resources={"n1": 1}, object_store_memory=64 * MiB)
        c.connect()
        try:
            reader = Reader.options(resources={"n1": 1}).remote()
            made = reader.make.remote(4 * MiB)
            shoal.wait([made], timeout=30)
            c.remove_node(node)
            with pytest.raises(shoal.exceptions.ObjectLostError):
                shoal.get(made, timeout=30)
        finally:
            shoal.shutdown()


def test_cross_node_get_of_a_large_array_is_a_zero_copy_view_after_the_pull(cluster):
    reader = Reader.options(resources={"n1": 1}).remote()
    assert shoal.get(reader.node.remote(), timeout=30) == cluster.n1.node_id
    a = np.arange(4 * MiB, dtype=np.float64)  # 32 MiB: four chunks
    ref = shoal.put(a)
    total, writeable, owndata = shoal.get(reader.read.remote([ref]), timeout=30)
    assert total == float(a.sum())
    assert not writeable and not owndata  # a read-only view of n1's shared memory
    # and the other way: a value made on n1, read by the driver on the head
    made = reader.make.remote(40 * MiB)
    x = shoal.get(made, timeout=30)
    assert x.shape == (40 * MiB,) and int(x[::4096].sum()) == 3 * (40 * MiB // 4096)
    assert not x.flags.writeable and not x.flags.owndata
    del x


def test_a_task_on_another_node_consumes_an_object_put_here(cluster):
    a = np.ones(16 * MiB, dtype=np.uint8)
    ref = shoal.put(a)
    total, node = shoal.get(total_and_node.options(resources={"n1": 1}).remote(ref),
                            timeout=30)
    assert (total, node) == (float(16 * MiB), cluster.n1.node_id)


def test_concurrent_pulls_beyond_the_store_capacity_queue_and_all_complete(cluster):
    reader = Reader.options(resources={"small": 1}, max_concurrency=4).remote()
    assert shoal.get(reader.node.remote(), timeout=30) == cluster.small.node_id
    refs = [shoal.put(np.full(OBJECT, i + 1, dtype=np.uint8)) for i in range(5)]
    before = store_stats(cluster, cluster.small)["pulls_waited_for_space"]
    results = shoal.get([reader.read.remote([r]) for r in refs], timeout=60)
    assert [r[0] for r in results] == [float((i + 1) * OBJECT) for i in range(5)]
    stats = store_stats(cluster, cluster.small)
    assert stats["used"] <= stats["capacity"] == SMALL_STORE
    assert stats["pulls_waited_for_space"] > before  # some had to queue for room
    assert stats["pulls_active"] == stats["pulls_queued"] == 0


def test_every_copy_is_freed_when_the_owner_frees_the_object(cluster):
    reader = Reader.options(resources={"n1": 1}).remote()
    shoal.get(reader.node.remote(), timeout=30)
    base = store_stats(cluster, cluster.n1)["num_objects"]
    ref = shoal.put(np.ones(8 * MiB, dtype=np.uint8))
    assert shoal.get(reader.read.remote([ref]), timeout=30)[0] == float(8 * MiB)
    wait_for_condition(lambda: store_stats(cluster, cluster.n1)["num_objects"] == base + 1,
                       timeout=10, message="n1 holds the pulled copy")
    del ref  # the driver owns it: both copies go
    wait_for_condition(lambda: store_stats(cluster, cluster.n1)["num_objects"] == base,
                       timeout=10, message="the owner freed the copy on n1")
    # a value whose primary copy is on n1, owned by the driver on the head
    made = reader.make.remote(8 * MiB)
    shoal.wait([made], timeout=30)
    wait_for_condition(lambda: store_stats(cluster, cluster.n1)["num_objects"] == base + 1,
                       timeout=10, message="n1 holds the task's return value")
    del made
    wait_for_condition(lambda: store_stats(cluster, cluster.n1)["num_objects"] == base,
                       timeout=10, message="the owner freed the primary copy on n1")
