"""``split(n, locality_hints=[actors])`` and ``streaming_split(n,
locality_hints=[node ids])`` on real clusters: on two nodes each piece (each
iterator) is made of the blocks on its node; on one node the pieces are as
equal as without hints."""

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


@ray.remote(num_cpus=0)
def _consume(it) -> list[tuple[int, str]]:
    return [(r["id"], r["node"]) for r in it.iter_rows()]


@pytest.mark.timeout(180)
def test_each_streaming_split_iterator_gets_its_nodes_blocks(shutdown_only):
    with labelled_cluster(256 * MiB, worker=1):
        def one_block(start: int, where: str) -> ray.data.Dataset:
            return ray.data.range(500, override_num_blocks=1).map_batches(
                lambda b, s=start: _made_here({"id": b["id"] + s}), resources={where: 0.01})

        # streamed (not materialized), the head's three blocks first: without the
        # hints the first blocks handed out are the head's, whoever asks
        parts = [one_block(i * 500, "head") for i in range(3)]
        parts += [one_block(i * 500, "worker") for i in range(3, 6)]
        ds = parts[0].union(*parts[1:])
        nodes = ray.get([Trainer.options(resources={w: 0.01}).remote().node.remote()
                         for w in ("worker", "head")], timeout=60)
        assert nodes[0] != nodes[1]
        its = ds.streaming_split(2, locality_hints=nodes)
        got = ray.get([_consume.options(resources={w: 0.01}).remote(it)
                       for it, w in zip(its, ("worker", "head"), strict=True)], timeout=120)
        for rows, node in zip(got, nodes, strict=True):
            assert len(rows) == 1500
            assert {n for _, n in rows} == {node}  # every block was made on its node
        assert sorted(i for rows in got for i, _ in rows) == list(range(3000))
        with pytest.raises(ValueError, match=r"locality_hints must have length n"):
            ds.streaming_split(3, locality_hints=nodes)
        with pytest.raises(TypeError, match="must be a list of node ids"):
            ds.streaming_split(2, locality_hints=[Trainer.remote(), nodes[0]])


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
