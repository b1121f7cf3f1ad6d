"""Dask's sample: ``DataFrame.sort_values`` with the p2p shuffle
(``shuffle_method="p2p"``) on ``LocalCluster(n_workers=2, threads_per_worker=1)``.

Dask's records are a pandas frame per input partition: the key as two integer
columns (``key_hi``: bytes 0-7 big-endian ``uint64``; ``key_lo``: bytes 8-9,
``uint16``; sorting by both sorts by the 10-byte key) and the 90 other bytes as
one pyarrow ``binary`` column (p2p could not send a ``fixed_size_binary``
column, and a column of Python ``bytes`` would cost Dask far more).  Partitions
are made by ``from_map`` tasks and persisted before the clock starts; the sort
phase is ``sort_values(...).persist()`` until every output partition is in
memory.  With a store size (the spilling row) each worker's ``memory_limit`` is
half of it, so the two workers have the budget the other systems' stores have;
bytes spilled are the workers' ``SpillBuffer`` totals (p2p's own shard files on
disk are not counted).
"""

from __future__ import annotations

import numpy as np

from bench.shuffle import records
from bench.shuffle.sample import Clock, Sample

SORT_BY = ["key_hi", "key_lo"]


def to_frame(data: np.ndarray):
    import pandas as pd
    import pyarrow as pa

    n = len(data)
    width = records.RECORD - records.KEY
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int32) * width)
    value = pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(data[:, records.KEY:]))])
    return pd.DataFrame({
        "key_hi": np.ascontiguousarray(data[:, :8]).view(">u8").ravel().astype(np.uint64),
        "key_lo": np.ascontiguousarray(data[:, 8:records.KEY]).view(">u2").ravel()
        .astype(np.uint16),
        "value": pd.Series(pd.arrays.ArrowExtensionArray(value), copy=False)})


def from_frame(frame) -> np.ndarray:
    """The inverse of :func:`to_frame`: ``(n, 100) uint8`` records."""
    import pyarrow as pa

    n = len(frame)
    out = np.empty((n, records.RECORD), dtype=np.uint8)
    if not n:
        return out
    out[:, :8] = frame["key_hi"].to_numpy(np.uint64).astype(">u8").view(np.uint8).reshape(n, 8)
    out[:, 8:records.KEY] = (frame["key_lo"].to_numpy(np.uint16).astype(">u2")
                             .view(np.uint8).reshape(n, 2))
    value = pa.array(frame["value"].array)
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if value.type != pa.binary():
        raise TypeError(f"the value column came back as {value.type}, not binary")
    offsets = np.frombuffer(value.buffers()[1], dtype=np.int32)[value.offset:value.offset + n + 1]
    width = records.RECORD - records.KEY
    if not np.array_equal(np.diff(offsets), np.full(n, width, dtype=np.int32)):
        raise ValueError("a value is not 90 bytes long")
    data = np.frombuffer(value.buffers()[2], dtype=np.uint8)
    out[:, records.KEY:] = data[offsets[0]:offsets[0] + n * width].reshape(n, width)
    return out


def _generate(span: tuple[int, int]):
    start, count = span
    return to_frame(records.make_records(start, count, 0))


def frame_checksum(frame) -> int:
    return records.checksum(from_frame(frame))


def frame_summary(frame) -> dict:
    return records.summarize(from_frame(frame))


def _spilled(client) -> int | None:
    def disk_bytes(dask_worker) -> int:
        return int(dask_worker.data.spilled_total.disk)

    try:
        return sum(client.run(disk_bytes).values())
    except Exception:  # noqa: BLE001 (an attribute of distributed's internals)
        return None


def run(sample: Sample, timeout: float) -> Sample:
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    options: dict = {"n_workers": 2, "threads_per_worker": 1, "processes": True,
                     "dashboard_address": None}
    if sample.store_bytes:
        options["memory_limit"] = sample.store_bytes // 2
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        clock = Clock()
        counts = records.input_counts(sample.total_bytes, sample.partitions)
        spans = [(sum(counts[:i]), c) for i, c in enumerate(counts)]
        sample.records = sum(counts)
        frames = dd.from_map(_generate, spans, meta=to_frame(records.make_records(0, 0, 0)),
                             enforce_metadata=False).persist()
        wait(frames, timeout=timeout)
        sums = client.compute([dask.delayed(frame_checksum)(p) for p in frames.to_delayed()])
        input_sum = sum(client.gather(sums)) & records.MASK64
        sample.generate_s = clock.lap()
        spilled_before = _spilled(client)

        clock.sort_started()
        ordered = frames.sort_values(SORT_BY, shuffle_method="p2p").persist()
        del frames  # the sort's tasks hold the inputs now
        wait(ordered, timeout=timeout)
        sample.sort_s = clock.sort_ended()
        after = _spilled(client)
        if after is not None and spilled_before is not None:
            sample.spilled_bytes = after - spilled_before
        sample.spilled_total = after

        parts = client.gather(client.compute(
            [dask.delayed(frame_summary)(p) for p in ordered.to_delayed()]))
        sample.detail["output_partitions"] = len(parts)
        del ordered
        sample.validate_s = clock.lap()
        sample.problems = records.check_parts(parts, sample.records, input_sum)
        sample.ok = not sample.problems
    return sample
