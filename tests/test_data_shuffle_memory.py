"""What a shuffle keeps in the object store (design.md section 21): the input
blocks are freed as the maps read them (the maps' arguments are their only
references, and lineage can still rebuild them), and the outputs stream to
the consumer as each reduce finishes, so a shuffle of half the store's size
runs without spilling.  Before, the caller held the input until every reduce
had finished: input, map outputs and outputs, three copies, spilled."""

from __future__ import annotations

import numpy as np
import pytest

import shoal as ray
from tests.clusters import connected_cluster, store_stats

MiB = 1 << 20
STORE = 192 * MiB
ROWS = 1_000_000
WIDTH = 96  # payload bytes a row: 96 MB in all, half the store


def _payload(batch: dict) -> dict:
    ids = batch["id"]
    return {"id": ids, "key": (ids * 7919) % 100_003,
            "payload": np.repeat((ids % 251)[:, None], WIDTH, axis=1).astype(np.uint8)}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("operation", ["random_shuffle", "sort"])
def test_a_shuffle_of_half_the_store_does_not_spill(shutdown_only, operation):
    with connected_cluster({"num_cpus": 2, "object_store_memory": STORE}) as cluster:
        ds = ray.data.range(ROWS, override_num_blocks=24).map_batches(_payload)
        ds = ds.random_shuffle(seed=7) if operation == "random_shuffle" else ds.sort("key")
        seen, ids, last_key = 0, 0, -1
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            seen += len(batch["id"])
            ids += int(batch["id"].sum())
            assert (batch["payload"][:, 0] == batch["id"] % 251).all()
            if operation == "sort":
                assert batch["key"][0] >= last_key and (np.diff(batch["key"]) >= 0).all()
                last_key = int(batch["key"][-1])
        assert seen == ROWS and ids == ROWS * (ROWS - 1) // 2
        stats = store_stats(cluster, cluster.head_node)
        assert stats["spilled_bytes_total"] == 0, stats


@pytest.mark.timeout(240)
def test_blocks_the_consumer_took_are_freed_while_the_run_goes_on(shutdown_only):
    """A dataset twice the store streamed into iter_batches: each block leaves the
    store once the consumer has it.  Before, the executor kept the ref of every
    block it had emitted until the run ended, so the store filled and spilled."""
    with connected_cluster({"num_cpus": 2, "object_store_memory": STORE}) as cluster:
        rows = 4 * ROWS  # 4M rows of ~100 bytes: twice the store
        ds = ray.data.range(rows, override_num_blocks=96).map_batches(_payload)
        seen = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            seen += len(batch["id"])
        assert seen == rows
        stats = store_stats(cluster, cluster.head_node)
        assert stats["spilled_bytes_total"] == 0, stats
