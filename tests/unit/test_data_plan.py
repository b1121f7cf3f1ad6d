"""Limit pushdown into reads (plan.limit_pushdown), without a cluster: the read
tasks a limit needs, each told how many rows it may stop at."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

import shoal.data as data
from shoal.data.files import FileRead, ParquetReader
from shoal.data.plan import Read, limit_pushdown


def _reads(ds) -> Read:
    op = limit_pushdown(ds._op)
    while not isinstance(op, Read):
        op = op.input
    return op


def test_a_limit_keeps_the_reads_it_needs_and_caps_the_last():
    ds = data.range(100, override_num_blocks=10).map(lambda r: r).limit(25)
    tasks = _reads(ds).tasks
    assert [t.num_rows for t in tasks] == [10, 10, 5]
    assert [len(next(iter(t.read()))) for t in tasks] == [10, 10, 5]
    assert len(_reads(data.range(100, override_num_blocks=10).limit(0)).tasks) == 1


def test_a_limit_after_a_filter_or_batches_cuts_nothing():
    base = data.range(100, override_num_blocks=10)
    assert len(_reads(base.filter(lambda r: True).limit(5)).tasks) == 10
    assert len(_reads(base.map_batches(lambda b: b).limit(5)).tasks) == 10


def test_parquet_reads_stop_at_the_row_group_holding_the_limit(tmp_path):
    path = str(tmp_path / "f.parquet")
    pq.write_table(pa.table({"x": list(range(1000))}), path, row_group_size=100)
    read = FileRead(ParquetReader(None), path, "ReadParquet").limited(150)
    [table] = list(read())
    assert table.column("x").to_pylist() == list(range(150))
    assert read.reader.max_rows == 150
    assert FileRead(ParquetReader(None, {"filters": [("x", ">", 5)]}), path,
                    "ReadParquet").limited(5) is None  # a filter chooses the rows
