"""Ray's placement rule for actors that name no resources: they hold no CPU while
they run, but are only placed on a node that has CPUs -- never on a 0-CPU node.
An actor that asks for ``num_cpus=0`` explicitly may go anywhere.  A burst of
actors spreads over the nodes that have room."""

from __future__ import annotations

import shoal
from shoal.cluster_utils import Cluster
from tests.clusters import connected_cluster


@shoal.remote
class WhereAmI:
    def node(self):
        return shoal.get_runtime_context().get_node_id()


def test_default_actors_wait_for_a_node_with_cpus():
    with connected_cluster({"num_cpus": 0}) as cluster:
        head = cluster.head_node.node_id
        explicit = WhereAmI.options(num_cpus=0).remote()
        assert shoal.get(explicit.node.remote(), timeout=60) == head
        default = [WhereAmI.remote() for _ in range(3)]
        calls = [a.node.remote() for a in default]
        ready, _ = shoal.wait(calls, num_returns=1, timeout=2)
        assert ready == []  # pending: the only node has no CPU
        worker = cluster.add_node(num_cpus=1)
        # all three on the 1-CPU node: placing needs a CPU there, running holds none
        assert shoal.get(calls, timeout=60) == [worker.node_id] * 3


def test_a_burst_of_gpu_actors_spreads_over_the_nodes_with_gpus():
    """Six one-GPU actors made at once on three nodes of two (fake) GPUs each: all
    start, each on its own GPU (the control store counts the actors it just sent
    to a node before that node's next heartbeat does)."""
    if shoal.is_initialized():
        shoal.shutdown()
    cluster = Cluster()
    try:
        for _ in range(3):
            cluster.add_node(num_cpus=4, num_gpus=2)
        shoal.init(address=cluster.address)

        @shoal.remote(num_gpus=1)
        class OnGpu:
            def where(self):
                return shoal.get_runtime_context().get_node_id(), tuple(shoal.get_gpu_ids())

        actors = [OnGpu.remote() for _ in range(6)]
        places = shoal.get([a.where.remote() for a in actors], timeout=60)
        assert len(set(places)) == 6
        assert {node for node, _ in places} == {n.unique_id for n in cluster.list_all_nodes()}
    finally:
        shoal.shutdown()
        cluster.shutdown()
