"""``split(n, locality_hints=[actors])`` on real clusters: on two nodes each
piece is made of the blocks on its actor's node; on one node the pieces are
as equal as without hints."""

from __future__ import annotations

import numpy as np
import pytest

import shoal as ray
from tests.clusters import labelled_cluster

MiB = 1 << 20


def _made_here(batch: dict) -> dict:
    """1 KB rows (blocks of ~1 MB live in the store, not inline), tagged with
    the node that made them."""
    ids = batch["id"]
    node = ray.get_runtime_context().get_node_id()
    return {"id": ids, "node": np.array([node] * len(ids)),
            "payload": np.zeros((len(ids), 1024), np.uint8)}


@ray.remote(num_cpus=0)
class Trainer:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


@pytest.mark.timeout(180)
def test_each_piece_is_made_of_its_actors_nodes_blocks(shutdown_only):
    with labelled_cluster(256 * MiB, worker=1):
        on_head = ray.data.range(4000, override_num_blocks=4).map_batches(
            _made_here, resources={"head": 0.01})
        on_worker = ray.data.range(4000, override_num_blocks=4).map_batches(
            _made_here, resources={"worker": 0.01})
        ds = on_head.union(on_worker).materialize()
        actors = [Trainer.options(resources={"worker": 0.01}).remote(),
                  Trainer.options(resources={"head": 0.01}).remote()]
        nodes = ray.get([a.node.remote() for a in actors], timeout=60)
        assert nodes[0] != nodes[1]
        pieces = ds.split(2, locality_hints=actors)
        for piece, node in zip(pieces, nodes, strict=True):
            frame = piece.to_pandas()
            assert len(frame) == 4000
            assert set(frame["node"]) == {node}  # every row was made on the actor's node
        ids = sorted(i for p in pieces for i in p.to_pandas()["id"])
        assert ids == sorted(list(range(4000)) * 2)


def test_on_one_node_hints_split_equally(shutdown_only):
    ray.init(num_cpus=2)
    ds = ray.data.range(1001, override_num_blocks=7).map_batches(_made_here).materialize()
    actors = [Trainer.remote() for _ in range(3)]
    ray.get([a.node.remote() for a in actors], timeout=60)
    pieces = ds.split(3, locality_hints=actors)
    assert [p.count() for p in pieces] == [334, 334, 333]
    assert sorted(i for p in pieces for i in p.to_pandas()["id"]) == list(range(1001))
    equal = ds.split(3, equal=True, locality_hints=actors)
    assert [p.count() for p in equal] == [333, 333, 333]
    with pytest.raises(ValueError, match="length of locality_hints 2 doesn't equal"):
        ds.split(3, locality_hints=actors[:2])
    with pytest.raises(TypeError, match="must be actor handles"):
        ds.split(1, locality_hints=["node-1"])
