"""Running a plan for a consuming call: an ``ExecutionSource`` starts a
streaming executor and yields its blocks; helpers fetch them whole (take,
to_pandas) or read only their metadata (count, schema)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

import shoal
from shoal.data.block import column_to_numpy, concat, to_pandas
from shoal.data.executor import RefBundle, StreamingExecutor
from shoal.data.files import FileRead
from shoal.data.plan import InputData, LogicalOp, MapOp, Read

Bundle = RefBundle
FETCH_GROUP = 16  # blocks fetched by one get (fewer round trips, bounded memory)


class ExecutionSource:
    """One run of ``op``; the dataset it came from keeps the run's stats."""

    def __init__(self, op: LogicalOp, owner: Any = None) -> None:
        self.op = op
        self.owner = owner
        self.executor: StreamingExecutor | None = None

    def bundles(self) -> Iterator[RefBundle]:
        self.executor = StreamingExecutor(self.op)
        if self.owner is not None:  # before start(): it runs the all-to-all operators
            self.owner.record_stats(self.executor.stats)
        self.executor.start()
        yield from self.executor.outputs()

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def tables(source: ExecutionSource) -> Iterator[pa.Table]:
    group: list[Any] = []
    for bundle in source.bundles():
        group.append(bundle.ref)
        if len(group) >= FETCH_GROUP:
            yield from shoal.get(group)
            group = []
    if group:
        yield from shoal.get(group)


def concat_tables(source: ExecutionSource) -> pa.Table:
    return concat(list(tables(source)))


def known_schema(op: LogicalOp) -> pa.Schema | None:
    if isinstance(op, InputData):
        for m in op.metadata:
            if m.schema is not None and (m.num_rows or len(op.metadata) == 1):
                return m.schema
    return None


def first_schema(source: ExecutionSource) -> pa.Schema | None:
    for bundle in source.bundles():
        if bundle.metadata.schema is not None:
            return bundle.metadata.schema
    return None


def input_files(op: LogicalOp) -> list[str]:
    out: list[str] = []
    for child in op.inputs:
        out += input_files(child)
    if isinstance(op, Read):
        out += [t.read.path for t in op.tasks if isinstance(t.read, FileRead)]
    return out


def _to_numpy(table: pa.Table, column: str | None) -> Any:
    if column is not None:
        return column_to_numpy(table.column(column))
    return {n: column_to_numpy(table.column(n)) for n in table.column_names}


remote_to_numpy = shoal.remote(_to_numpy)
remote_to_pandas = shoal.remote(to_pandas)

__all__ = ["Bundle", "ExecutionSource", "MapOp", "concat_tables", "tables"]
