"""The raysort-style sort (``bench/sort_core.py``) as rows: each sample starts a fresh
local cluster with 2 CPUs (and the row's store size), sorts, validates, stops it.

A run that fails (today: shoal's store filling up at 4 GB and 8 GB, before it can
spill) is reported as that system's error for the row; the suite goes on.
"""

from __future__ import annotations

import sys

from bench import sort_core
from bench.registry import SEC, row

NA = {"dask": "Dask has no num_returns (the map's R outputs)"}
GiB = 2**30


def _sort_row(gb: int, partitions: int, store_gib: int | None, mode: str, timeout: float):
    store = f", {store_gib} GiB store" if store_gib else ""
    name = f"sort {gb} GB in {partitions} partitions{store} (validated)"

    @row(name, group=f"sort-{gb}g-{partitions}", unit=SEC, na=NA, cluster=False, mode=mode,
         max_repeat=3, quick_repeat=1, timeout=timeout, quick_timeout=timeout)
    def sort(api, ctx):
        result = sort_core.run_on_fresh_cluster(
            ctx.system, gb * 10**9, partitions, store_gib * GiB if store_gib else None,
            timeout=timeout)
        print(result.summary(), file=sys.stderr, flush=True)  # to the log
        if result.error or not result.ok:
            raise RuntimeError(result.summary())
        return result.seconds


_sort_row(1, 16, None, "both", 900)
_sort_row(4, 16, None, "full", 1800)
_sort_row(8, 128, 4, "full", 2400)
