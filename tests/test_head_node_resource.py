"""The head node carries Ray's head marker resource (one unit of
``node:__internal_head__``); nodes that join do not add to it."""

from __future__ import annotations

import shoal
from shoal.node.startup import HEAD_NODE_RESOURCE
from tests.clusters import connected_cluster


def test_only_the_head_has_the_head_resource():
    with connected_cluster({"num_cpus": 1}, worker={"num_cpus": 1}):
        assert HEAD_NODE_RESOURCE == "node:__internal_head__"
        assert shoal.cluster_resources()[HEAD_NODE_RESOURCE] == 1

        @shoal.remote(resources={HEAD_NODE_RESOURCE: 0.01})
        def where():
            return shoal.get_runtime_context().get_node_id()

        head_id = [n for n in shoal.nodes() if n.get("Resources", {}).get(HEAD_NODE_RESOURCE)]
        assert len(head_id) == 1
        assert shoal.get(where.remote(), timeout=60) == head_id[0]["NodeID"]
