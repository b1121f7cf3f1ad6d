"""With SHOAL_PAGE_RELEASE=1, a store holding more free resident pages than its
slack gives them back to the OS (design.md section 13): a fragmenting pattern
of frees leaves the arena file's resident bytes near the live ones, and every
object keeps its bytes."""

from __future__ import annotations

import numpy as np
import pytest

import shoal
from shoal.node.object_store.page_release import default_slack
from tests.clusters import connected_cluster, store_stats
from tests.utils import wait_for_condition

MiB = 1 << 20
STORE = 512 * MiB


@pytest.mark.timeout(120)
def test_freed_holes_between_live_objects_leave_memory(shutdown_only, monkeypatch):
    monkeypatch.setenv("SHOAL_PAGE_RELEASE", "1")  # the node agent's switch (off by default)
    with connected_cluster({"num_cpus": 1, "object_store_memory": STORE}) as cluster:
        node = cluster.head_node
        arrays = [np.full(4 * MiB, i % 251, dtype=np.uint8) for i in range(64)]
        refs = [shoal.put(a) for a in arrays]  # 256 MiB, every page touched
        del arrays
        before = store_stats(cluster, node)
        assert before["arena_resident_bytes"] >= 256 * MiB
        for i in range(0, 64, 2):
            refs[i] = None  # 128 MiB of 4 MiB holes between live objects

        def settled():
            stats = store_stats(cluster, node)
            return (stats["used"] <= 130 * MiB and stats["arena_resident_bytes"]
                    <= stats["used"] + default_slack(STORE) + 8 * MiB) and stats

        stats = wait_for_condition(settled, timeout=30)
        assert stats["pages_given_back_bytes"] >= 64 * MiB
        for i in range(1, 64, 2):
            value = shoal.get(refs[i], timeout=30)
            assert value[0] == i % 251 and value[-1] == i % 251
        # the holes take new objects again
        more = [shoal.put(np.full(4 * MiB, 200, dtype=np.uint8)) for _ in range(16)]
        assert all(shoal.get(r, timeout=30)[-1] == 200 for r in more)
