"""A node dies while a Dataset sort runs on two nodes: lineage rebuilds what
it held (input blocks made by read tasks there, map outputs) and the sorted
result is exact, compared with pandas on the same rows."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

import shoal as ray
from shoal.core import context
from tests.clusters import connected_cluster
from tests.utils import wait_for_condition

MiB = 1 << 20
NODE = {"num_cpus": 1, "object_store_memory": 256 * MiB}


def _rows(batch: dict) -> dict:
    """Deterministic rows from their ids (a rebuilt block equals the lost one)."""
    ids = batch["id"]
    return {"key": (ids * 7919) % 1009, "id": ids,
            "payload": np.repeat(ids[:, None] % 251, 32, axis=1).astype(np.uint8)}


def _wide_rows(batch: dict) -> dict:
    """1 KB rows (a map's piece for one reducer must be a store object, not a
    value small enough to travel inline through the driver)."""
    ids = batch["id"]
    return {"key": (ids * 7919) % 1009, "id": ids,
            "payload": np.repeat(ids[:, None] % 251, 1024, axis=1).astype(np.uint8)}


class _ToPandasInBackground:
    """``ds.to_pandas()`` on a thread, so the test can kill a node meanwhile."""

    def __init__(self, ds) -> None:
        self.result: dict = {}
        self.thread = threading.Thread(target=self._run, args=(ds,), daemon=True)
        self.thread.start()

    def _run(self, ds) -> None:
        try:
            self.result["frame"] = ds.to_pandas()
        except BaseException as exc:  # reported by frame()
            self.result["error"] = exc

    def frame(self, timeout: float = 150) -> pd.DataFrame:
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "the sort did not finish"
        assert "error" not in self.result, self.result.get("error")
        return self.result["frame"]


def _rebuilds() -> int:
    return context.current_worker_or_none().recovery.lineage.rebuilds


@pytest.mark.timeout(180)
def test_a_node_killed_during_a_sort_leaves_the_result_exact(shutdown_only):
    rows = 400_000
    with connected_cluster({**NODE, "node_timeout_s": 1.0}, worker=NODE) as cluster:
        ds = ray.data.range(rows, override_num_blocks=40).map_batches(_rows) \
            .sort(["key", "id"], descending=[False, True])
        background = _ToPandasInBackground(ds)
        # the sort's input is made (blocks on both nodes) and its shuffle starts: kill
        wait_for_condition(lambda: ds._last_stats is not None and ds._last_stats.children,
                           timeout=120, interval=0.005)
        cluster.remove_node(cluster.worker)
        got = background.frame()
        ids = np.arange(rows)
        want = pd.DataFrame(_rows({"id": ids}) | {"payload": list(
            np.repeat(ids[:, None] % 251, 32, axis=1).astype(np.uint8))})
        want = want.sort_values(["key", "id"], ascending=[True, False], ignore_index=True)
        assert got["key"].tolist() == want["key"].tolist()
        assert got["id"].tolist() == want["id"].tolist()
        assert all((p == i % 251).all() for p, i in zip(got["payload"], got["id"], strict=True))
        assert _rebuilds() > 0  # the kill took objects that lineage made again


@pytest.mark.timeout(180)
def test_a_node_killed_after_the_maps_freed_their_inputs_leaves_the_sort_exact(shutdown_only):
    """The shuffle's input blocks are freed once the maps that read them are done
    (their only references are the maps' arguments).  A node dying then takes
    map outputs whose maps must run again: lineage makes their freed inputs
    again first (the read tasks run again).  The simple strategy keeps every map's
    output until the reduces, so the maps that finished on the dead node must
    run again whenever the kill comes."""
    from shoal.util.state import list_tasks

    rows = 100_000  # 100 MB
    ctx = ray.data.DataContext.get_current()
    before = ctx.target_max_block_size, ctx.shuffle_strategy
    ctx.target_max_block_size = 4 * MiB  # ~25 maps: the kill comes among them
    ctx.shuffle_strategy = "simple"
    try:
        with connected_cluster({**NODE, "node_timeout_s": 1.0}, worker=NODE) as cluster:
            ds = ray.data.range(rows, override_num_blocks=40).map_batches(_wide_rows)
            ds = ds.sort("key")
            def maps_done_on_the_worker() -> int:
                return len(list_tasks(filters=[("name", "=", "map_task"),
                                               ("state", "=", "FINISHED"),
                                               ("node_id", "=", cluster.worker.node_id)],
                                      limit=None))

            background = _ToPandasInBackground(ds)
            wait_for_condition(lambda: maps_done_on_the_worker() >= 2, timeout=120,
                               interval=0.01)
            cluster.remove_node(cluster.worker)
            got = background.frame()
            ids = np.arange(rows)
            want = pd.DataFrame({"key": (ids * 7919) % 1009, "id": ids})
            want = want.sort_values("key", kind="stable", ignore_index=True)
            assert got["key"].tolist() == want["key"].tolist()
            assert sorted(got["id"]) == list(range(rows))
            assert all((p == i % 251).all() for p, i in zip(got["payload"], got["id"],
                                                              strict=True))
            assert _rebuilds() > 0
    finally:
        ctx.target_max_block_size, ctx.shuffle_strategy = before
