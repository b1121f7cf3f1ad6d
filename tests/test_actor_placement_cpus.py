"""Ray's placement rule for actors that name no resources: they hold no CPU while
they run, but are only placed on a node that has CPUs -- never on a 0-CPU node.
An actor that asks for ``num_cpus=0`` explicitly may go anywhere."""

from __future__ import annotations

import shoal
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
