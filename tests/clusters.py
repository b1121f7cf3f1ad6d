"""Multi-node test clusters: started, connected, and always torn down.

Shared by the modules that run several node agents on this machine
(transfer, spillback, ownership, lineage, chaos).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import shoal
from shoal.cluster_utils import Cluster
from shoal.launch import control_client
from shoal.rpc.messages import Method


@contextlib.contextmanager
def connected_cluster(head_node_args: dict, **nodes: dict) -> Iterator[Cluster]:
    """A head with ``head_node_args`` and one node per keyword (kept as an attribute
    of that name), with this process connected as its driver."""
    if shoal.is_initialized():
        shoal.shutdown()
    c = Cluster(initialize_head=True, head_node_args=head_node_args)
    try:
        for name, node_args in nodes.items():
            setattr(c, name, c.add_node(**node_args))
        c.connect()
        yield c
    finally:
        shoal.shutdown()
        c.shutdown()


def labelled_cluster(store: int, head_cpus: float = 1,
                     **node_cpus: float) -> contextlib.AbstractContextManager[Cluster]:
    """``connected_cluster`` with a head and one node per keyword (its CPUs), each
    with ``store`` bytes of object store and a custom resource of its own name
    (``"head"`` for the head), so tests can place work on a chosen node."""
    return connected_cluster(
        {"num_cpus": head_cpus, "resources": {"head": 1}, "object_store_memory": store},
        **{name: {"num_cpus": cpus, "resources": {name: 1}, "object_store_memory": store}
           for name, cpus in node_cpus.items()})


def store_stats(cluster: Cluster, node) -> dict:
    return control_client.call(node.address, cluster.token, Method.STORE_STATS, timeout=10)


def objects_per_node(cluster: Cluster) -> dict[str, int]:
    """Objects in each live node's store, by short node id."""
    return {n.node_id[:8]: store_stats(cluster, n)["num_objects"]
            for n in cluster.list_all_nodes()}
