"""Ray 2.60's samples: the raysort-style core program (``bench/sort_core.py``, the
same code shoal runs) and Ray Data's ``Dataset.sort`` with each shuffle strategy
Ray 2.60 has for a sort (``DataContext.shuffle_strategy``):

* ``raydata-v2``: ``shuffle_v2``, Ray 2.60's default (hash-shuffle operators with
  aggregator actors, used for sort with sampled range boundaries);
* ``raydata-pull``: ``sort_shuffle_pull_based`` (map and reduce tasks);
* ``raydata-push``: ``sort_shuffle_push_based`` (Ray Data's Exoshuffle-style
  push-based shuffle with merge tasks).

Ray Data's records are Arrow tables: ``key`` ``fixed_size_binary(10)``, ``value``
``fixed_size_binary(90)`` (the 100 bytes, split), one block per input partition,
made by ``map_batches`` tasks and materialized before the clock starts; the sort
phase is ``ds.sort("key").materialize()``.  Spilled bytes come from Ray's own
``memory_summary`` ("Spilled N MiB").
"""

from __future__ import annotations

import re
import sys
import traceback

import numpy as np

from bench import sort_core
from bench.shuffle import records
from bench.shuffle.sample import Clock, Sample

DATA_STRATEGIES = {"raydata-v2": "shuffle_v2", "raydata-pull": "sort_shuffle_pull_based",
                   "raydata-push": "sort_shuffle_push_based"}
_SPILLED = re.compile(r"Spilled (\d+) MiB")


def run(sample: Sample, timeout: float) -> Sample:
    import ray

    # "local": always a new cluster of this process's own; with no address Ray joins a
    # cluster someone started with `ray start` on this machine, if there is one
    init: dict = {"address": "local", "num_cpus": 2, "include_dashboard": False}
    if sample.store_bytes:
        init["object_store_memory"] = sample.store_bytes
    ray.init(**init)
    try:
        if sample.system in DATA_STRATEGIES:
            _data_sort(ray, sample, timeout)
        else:
            _core_sort(ray, sample, timeout)
        sample.spilled_total = spilled_bytes()
    finally:
        ray.shutdown()
    return sample


def spilled_bytes() -> int | None:
    """Bytes Ray has spilled in this session (its memory summary's "Spilled N MiB")."""
    try:
        import ray
        from ray._private.internal_api import memory_summary

        # this cluster's address: with none, Ray fails when others run on the machine
        text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    except Exception:  # noqa: BLE001 (a private API: report nothing rather than fail)
        traceback.print_exc(file=sys.stderr)  # to the sample's log
        return None
    match = _SPILLED.search(text)
    return int(match.group(1)) * 2**20 if match else 0


def _difference(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _finish(sample: Sample, parts: list[dict], input_sum: int, clock: Clock) -> None:
    sample.validate_s = clock.lap()
    sample.problems = records.check_parts(parts, sample.records, input_sum)
    sample.ok = not sample.problems


def _core_sort(ray, sample: Sample, timeout: float) -> None:
    clock = Clock()
    inputs, sample.records, input_sum = records.generate_stored(
        ray, sample.total_bytes, sample.partitions, timeout)
    sample.generate_s = clock.lap()
    spilled_before = spilled_bytes()

    clock.sort_started()
    outputs = sort_core.sort_stored(ray, inputs, timeout=timeout)
    ray.wait(outputs, num_returns=len(outputs), timeout=timeout)
    sample.sort_s = clock.sort_ended()
    sample.spilled_bytes = _difference(spilled_bytes(), spilled_before)

    summarize = ray.remote(records.summarize)
    summaries = []
    for index, ref in enumerate(outputs):
        summaries.append(summarize.remote(ref))
        outputs[index] = None
    _finish(sample, ray.get(summaries, timeout=timeout), input_sum, clock)


# ---- Ray Data -------------------------------------------------------------------------
def to_table(data: np.ndarray):
    """Records as an Arrow table of ``key`` (10 bytes) and ``value`` (90 bytes)."""
    import pyarrow as pa

    n = len(data)
    key = pa.py_buffer(np.ascontiguousarray(data[:, :records.KEY]))
    value = pa.py_buffer(np.ascontiguousarray(data[:, records.KEY:]))
    return pa.table({
        "key": pa.FixedSizeBinaryArray.from_buffers(pa.binary(records.KEY), n, [None, key]),
        "value": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(records.RECORD - records.KEY), n, [None, value])})


def _column_bytes(table, name: str, width: int) -> np.ndarray:
    column = table.column(name).combine_chunks()
    n = len(column)
    raw = np.frombuffer(column.buffers()[1], dtype=np.uint8)
    return raw[column.offset * width:(column.offset + n) * width].reshape(n, width)


def from_table(table) -> np.ndarray:
    """The inverse of :func:`to_table`: ``(n, 100) uint8`` records."""
    n = table.num_rows
    out = np.empty((n, records.RECORD), dtype=np.uint8)
    if n:
        out[:, :records.KEY] = _column_bytes(table, "key", records.KEY)
        out[:, records.KEY:] = _column_bytes(table, "value", records.RECORD - records.KEY)
    return out


def _generate_batch(batch: dict, starts: list[int], counts: list[int]):
    index = int(batch["id"][0])
    return to_table(records.make_records(starts[index], counts[index], 0))


def table_checksum(table) -> int:
    return records.checksum(from_table(table))


def table_summary(table) -> dict:
    return records.summarize(from_table(table))


def _data_sort(ray, sample: Sample, timeout: float) -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.shuffle_strategy = DATA_STRATEGIES[sample.system]
    sample.detail["shuffle_strategy"] = str(context.shuffle_strategy.value)
    context.enable_progress_bars = False
    clock = Clock()
    counts = records.input_counts(sample.total_bytes, sample.partitions)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    sample.records = sum(counts)
    ds = ray.data.range(len(counts), override_num_blocks=len(counts)).map_batches(
        _generate_batch, batch_size=1, batch_format="numpy",
        fn_kwargs={"starts": starts, "counts": counts}).materialize()
    checksum = ray.remote(table_checksum)
    input_sum = sum(ray.get([checksum.remote(r) for r in ds.to_arrow_refs()],
                            timeout=timeout)) & records.MASK64
    sample.detail["input_blocks"] = ds.num_blocks()
    sample.generate_s = clock.lap()
    spilled_before = spilled_bytes()

    clock.sort_started()
    out = ds.sort("key").materialize()
    sample.sort_s = clock.sort_ended()
    sample.spilled_bytes = _difference(spilled_bytes(), spilled_before)

    summary = ray.remote(table_summary)
    refs = out.to_arrow_refs()
    sample.detail["output_blocks"] = len(refs)
    del out
    parts = ray.get([summary.remote(r) for r in refs], timeout=timeout)
    _finish(sample, parts, input_sum, clock)
