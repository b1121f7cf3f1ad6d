"""The data rows, written once for Ray Data's API (shoal runs the same code:
``import shoal as ray``) and once for Dask DataFrame.  Each returns the rows it
processed; the child times it.  Inputs are parquet files the runner wrote
beforehand (inputs.py), so every system reads the same bytes.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import numpy as np

from bench.data import inputs

BATCH = 4096  # iter_batches' batch size
SHUFFLE_BUFFER = 100_000  # local_shuffle_buffer_size


# ---- Ray Data / shoal.data -------------------------------------------------------------------
def _scale(batch: dict) -> dict:
    return {"id": batch["id"], "key": batch["key"], "c": batch["a"] * 2.0 + batch["b"],
            "b": batch["b"]}


def raylike_etl(ray: Any, src: str, out: str) -> int:
    ds = ray.data.read_parquet(src).map_batches(_scale, batch_format="numpy",
                                                batch_size=None)
    ds.write_parquet(out)
    return ray.data.read_parquet(out).count()


def raylike_random_shuffle(ray: Any, src: str, out: str) -> int:
    return ray.data.read_parquet(src).random_shuffle(seed=1).materialize().count()


def raylike_sort(ray: Any, src: str, out: str) -> int:
    ds = ray.data.read_parquet(src).sort("key").materialize()
    first = ds.take(2)
    assert first[0]["key"] <= first[1]["key"]
    return ds.count()


def raylike_groupby(ray: Any, src: str, out: str, column: str) -> int:
    result = ray.data.read_parquet(src, columns=[column, "v"]).groupby(column).mean("v")
    return result.materialize().count()


def raylike_iter_batches(ray: Any, src: str, out: str) -> int:
    rows = 0
    ds = ray.data.read_parquet(src, columns=["id", "a"])
    for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy",
                                 local_shuffle_buffer_size=SHUFFLE_BUFFER):
        rows += len(batch["id"])  # the "training step" touches the batch
        float(batch["a"].sum())
    return rows


# ---- Dask DataFrame ----------------------------------------------------------------------------
def _scale_frame(df: Any) -> Any:
    return df.assign(c=df["a"] * 2.0 + df["b"]).drop(columns=["a"])


def dask_etl(dd: Any, client: Any, src: str, out: str) -> int:
    dd.read_parquet(src).map_partitions(_scale_frame).to_parquet(out)
    return int(dd.read_parquet(out).map_partitions(len).sum().compute())


def dask_random_shuffle(dd: Any, client: Any, src: str, out: str) -> int:
    df = dd.read_parquet(src)
    df = df.assign(r=df["id"].map_partitions(
        lambda s: np.random.default_rng(int(s.iloc[0]) if len(s) else 0).random(len(s)),
        meta=("r", "f8")))
    shuffled = df.shuffle("r").persist()
    return int(shuffled.map_partitions(len).sum().compute())


def dask_sort(dd: Any, client: Any, src: str, out: str) -> int:
    result = dd.read_parquet(src).sort_values("key").persist()
    head = result.head(2)
    assert head["key"].iloc[0] <= head["key"].iloc[1]
    return int(result.map_partitions(len).sum().compute())


def dask_groupby(dd: Any, client: Any, src: str, out: str, column: str) -> int:
    df = dd.read_parquet(src, columns=[column, "v"])
    result = df.groupby(column)["v"].mean(split_out=max(1, df.npartitions // 4)).persist()
    return int(result.map_partitions(len).sum().compute())


def dask_iter_batches(dd: Any, client: Any, src: str, out: str) -> int:
    """Dask has no iter_batches: the partitions are computed one ahead of the
    loop, and a buffer of ``SHUFFLE_BUFFER`` rows is shuffled locally as Ray's is."""
    df = dd.read_parquet(src, columns=["id", "a"])
    parts = df.to_delayed()
    rng = np.random.default_rng(0)
    rows = 0
    buffer: list[np.ndarray] = []
    held = 0
    nxt = client.compute(parts[0]) if parts else None
    for i in range(len(parts)):
        frame = nxt.result()
        nxt = client.compute(parts[i + 1]) if i + 1 < len(parts) else None
        buffer.append(np.stack([frame["id"].to_numpy(), frame["a"].to_numpy()], axis=1))
        held += len(frame)
        while held >= SHUFFLE_BUFFER + BATCH or (nxt is None and held):
            pool = np.concatenate(buffer)
            pool = pool[rng.permutation(len(pool))]
            take = min(BATCH, len(pool))
            batch, rest = pool[:take], pool[take:]
            rows += len(batch)
            float(batch[:, 1].sum())
            buffer, held = [rest], len(rest)
            if nxt is None and not held:
                break
    return rows


WORKLOADS = {
    "etl": (raylike_etl, dask_etl),
    "random_shuffle": (raylike_random_shuffle, dask_random_shuffle),
    "sort": (raylike_sort, dask_sort),
    "groupby_1k": (lambda r, s, o: raylike_groupby(r, s, o, "k1k"),
                   lambda d, c, s, o: dask_groupby(d, c, s, o, "k1k")),
    "groupby_1m": (lambda r, s, o: raylike_groupby(r, s, o, "k1m"),
                   lambda d, c, s, o: dask_groupby(d, c, s, o, "k1m")),
    "iter_batches": (raylike_iter_batches, dask_iter_batches),
}


DASK_WORKER_FLOOR = 512 << 20  # a worker with pandas, pyarrow and distributed loaded


def dask_memory_limit(store_bytes: int) -> int | str:
    """Each of the 2 workers gets half the store, at least ``DASK_WORKER_FLOOR``:
    below that (62 MB a worker at ``--quick``'s "store = data / 2") the nanny
    restarts its workers for ever and the sample never ends."""
    return max(DASK_WORKER_FLOOR, store_bytes // 2) if store_bytes else "auto"


def run(system: str, workload: str, src: str, out: str, store_bytes: int) -> dict:
    """Start ``system`` (2 CPUs, ``store_bytes`` of object store), run, stop."""
    raylike, daskish = WORKLOADS[workload]
    src = inputs.files_of(src)  # type: ignore[assignment]
    if os.path.exists(out):
        shutil.rmtree(out)
    if system == "dask":
        import dask
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        dask.config.set({"dataframe.shuffle.method": "p2p"})
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               memory_limit=dask_memory_limit(store_bytes),
                               dashboard_address=None)
        client = Client(cluster)
        try:
            start = time.perf_counter()
            rows = daskish(dd, client, src, out)
            return {"seconds": time.perf_counter() - start, "rows": rows}
        finally:
            client.close()
            cluster.close()
    import importlib

    ray = importlib.import_module(system)
    init: dict = {"num_cpus": 2, "object_store_memory": store_bytes}
    if system == "ray":
        init["address"] = "local"  # a new cluster, even if another one runs here
        init["include_dashboard"] = False
        init["log_to_driver"] = False
        ray.init(**init)
        ray.data.DataContext.get_current().enable_progress_bars = False
    else:
        ray.init(**init)
        ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        start = time.perf_counter()
        rows = raylike(ray, src, out)
        return {"seconds": time.perf_counter() - start, "rows": rows}
    finally:
        ray.shutdown()
