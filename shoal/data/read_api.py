"""Creating datasets: synthetic (range, range_tensor), from driver values
(from_items, from_numpy, from_pandas, from_arrow) and from files (read_*).

Reads are lazy: each file (or row range) becomes a ``ReadTask`` that a map
stage runs, fused with the maps that follow it.  Values handed in by the
driver are cut into blocks and ``put`` at once (they exist already; Ray
does the same).  How many blocks: enough to keep every CPU busy
(``read_tasks_per_cpu``) and small enough that a block is a small part of
the memory budget (a sixteenth), so the budget holds several in flight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa

import shoal
from shoal.data import files
from shoal.data.block import (
    _from_pandas,
    _is_pandas,
    compact,
    metadata_of,
    table_from_columns,
    table_from_rows,
)
from shoal.data.context import DataContext
from shoal.data.dataset import Dataset
from shoal.data.executor import cluster_shape, memory_budget
from shoal.data.plan import InputData, Read, ReadTask

MiB = 1 << 20


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{what}: n must be an int >= 0, got {n!r}")
    return int(n)


def _num_blocks(rows: int, size_bytes: int, override: int | None, what: str) -> int:
    if override is not None and override != -1:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ValueError(f"{what}: override_num_blocks must be an int >= 1, got "
                             f"{override!r}")
        return max(1, min(override, rows)) if rows else 1
    ctx = DataContext.get_current()
    cpus, store = cluster_shape()
    target = min(ctx.target_max_block_size, max(MiB, memory_budget(ctx, store) // 16))
    blocks = max(math.ceil(size_bytes / target), int(ctx.read_tasks_per_cpu * max(1, cpus)))
    return max(1, min(blocks, rows))


def _bounds(rows: int, blocks: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, rows, blocks + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=False)]


def _parallelism(override_num_blocks: int | None, parallelism: int) -> int | None:
    return override_num_blocks if override_num_blocks is not None else (
        None if parallelism in (-1, None) else parallelism)


def range(n: int, *, parallelism: int = -1, concurrency: int | None = None,  # noqa: A001
          override_num_blocks: int | None = None) -> Dataset:
    """Rows ``{"id": i}`` for i in [0, n)."""
    n = _check_count(n, "range")
    blocks = _num_blocks(n, 8 * n, _parallelism(override_num_blocks, parallelism), "range")
    tasks = tuple(ReadTask(read=_RangeRead(a, b, None), num_rows=b - a, size_bytes=8 * (b - a),
                           label=f"range[{a}:{b}]") for a, b in _bounds(n, blocks))
    return Dataset(Read(name="ReadRange", tasks=tasks, concurrency=concurrency))


def range_tensor(n: int, *, shape: tuple = (1,), parallelism: int = -1,
                 concurrency: int | None = None,
                 override_num_blocks: int | None = None) -> Dataset:
    """Rows ``{"data": t}`` where ``t`` is an int64 array of ``shape`` filled with i."""
    n = _check_count(n, "range_tensor")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"range_tensor: shape must be a tuple of ints >= 0, got {shape!r}")
    row_bytes = 8 * int(np.prod(shape))
    blocks = _num_blocks(n, row_bytes * n, _parallelism(override_num_blocks, parallelism),
                         "range_tensor")
    tasks = tuple(ReadTask(read=_RangeRead(a, b, shape), num_rows=b - a,
                           size_bytes=row_bytes * (b - a), label=f"range_tensor[{a}:{b}]")
                  for a, b in _bounds(n, blocks))
    return Dataset(Read(name="ReadRangeTensor", tasks=tasks, concurrency=concurrency))


class _RangeRead:
    def __init__(self, start: int, stop: int, shape: tuple | None) -> None:
        self.start, self.stop, self.shape = start, stop, shape

    def limited(self, rows: int) -> _RangeRead:
        return _RangeRead(self.start, min(self.stop, self.start + rows), self.shape)

    def __call__(self) -> Iterable[pa.Table]:
        ids = np.arange(self.start, self.stop, dtype=np.int64)
        if self.shape is None:
            yield pa.table({"id": ids})
            return
        data = np.empty((len(ids), *self.shape), dtype=np.int64)
        data[...] = ids.reshape((-1,) + (1,) * len(self.shape))
        yield table_from_columns({"data": data})


def _put_blocks(tables: list[pa.Table], name: str) -> Dataset:
    if not shoal.is_initialized():
        shoal.init()
    refs = tuple(shoal.put(t) for t in tables)
    return Dataset(InputData(refs=refs, metadata=tuple(metadata_of(t) for t in tables),
                             name=name))


def from_items(items: list[Any], *, parallelism: int = -1,
               override_num_blocks: int | None = None) -> Dataset:
    """A dataset of ``items``: dicts are rows; anything else becomes ``{"item": x}``."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"from_items: items must be a list, got {type(items).__name__}")
    n = len(items)
    blocks = _num_blocks(n, 0, _parallelism(override_num_blocks, parallelism), "from_items")
    # one table first, so every block has the same schema (a key missing in
    # some rows is a null there, not a column missing from some blocks)
    whole = table_from_rows([x if isinstance(x, dict) else {"item": x} for x in items])
    tables = [compact(whole.slice(a, b - a)) for a, b in _bounds(n, blocks)] if n else [whole]
    return _put_blocks(tables, "FromItems")


def from_numpy(ndarrays: np.ndarray | list[np.ndarray]) -> Dataset:
    """One block per array; column ``"data"`` (rows along the first axis)."""
    arrays = [ndarrays] if isinstance(ndarrays, np.ndarray) else list(ndarrays)
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"from_numpy: expected numpy arrays, got {type(a).__name__}")
        if a.ndim == 0:
            raise ValueError("from_numpy: a 0-d array has no rows; reshape it to (1,)")
    return _put_blocks([table_from_columns({"data": a}) for a in arrays], "FromNumpy")


def from_pandas(dfs: Any) -> Dataset:
    frames = dfs if isinstance(dfs, (list, tuple)) else [dfs]
    for df in frames:
        if not _is_pandas(df):
            raise TypeError(f"from_pandas: expected pandas DataFrames, got {type(df).__name__}")
    return _put_blocks([_from_pandas(df) for df in frames], "FromPandas")


def from_arrow(tables: Any) -> Dataset:
    items = tables if isinstance(tables, (list, tuple)) else [tables]
    out = []
    for t in items:
        if isinstance(t, pa.RecordBatch):
            t = pa.Table.from_batches([t])
        if not isinstance(t, pa.Table):
            raise TypeError(f"from_arrow: expected pyarrow Tables, got {type(t).__name__}")
        out.append(t)
    return _put_blocks(out, "FromArrow")


# Ray's arguments of every file reader that choose how, not what, it reads: the
# blocks follow the memory budget and there is one read task per file.
_LAYOUT_ARGS = ("override_num_blocks", "parallelism", "ray_remote_args", "shuffle",
                "meta_provider", "partition_filter", "filesystem", "arrow_open_stream_args")


def _reader_args(name: str, kwargs: dict) -> tuple[dict, dict]:
    """(the reader's own arguments, Ray's layout arguments accepted and not used)."""
    layout = {k: kwargs.pop(k) for k in _LAYOUT_ARGS if k in kwargs}
    if layout.get("filesystem") is not None:
        raise ValueError(f"{name}: filesystem= is not supported (local paths only)")
    return kwargs, layout


def _file_read(name: str, paths: Any, reader: Any, *, file_extensions: list[str] | None,
               sizes: Any = None, concurrency: int | None = None,
               include_paths: bool = False) -> Dataset:
    found = files.expand(paths, name, file_extensions)
    tasks = []
    for path, size in found:
        rows, est = sizes(path) if sizes else (None, size)
        tasks.append(ReadTask(read=files.FileRead(reader, path, name, include_paths),
                              num_rows=rows, size_bytes=est, label=path))
    return Dataset(Read(name=name, tasks=tuple(tasks), concurrency=concurrency))


def read_parquet(paths: Any, *, columns: list[str] | None = None,
                 file_extensions: list[str] | None = None, concurrency: int | None = None,
                 include_paths: bool = False, **arrow_parquet_args: Any) -> Dataset:
    """Parquet files, directories (recursively) or globs; ``columns`` reads only
    those columns.  Row counts come from the files' footers, so ``count()``
    reads no data."""
    if columns is not None and (isinstance(columns, str) or not all(
            isinstance(c, str) for c in columns)):
        raise TypeError(f"read_parquet: columns must be a list of names, got {columns!r}")
    arrow_parquet_args, _ = _reader_args("read_parquet", arrow_parquet_args)
    reader = files.ParquetReader(columns=list(columns) if columns else None,
                                 kwargs=arrow_parquet_args)
    return _file_read("ReadParquet", paths, reader, file_extensions=file_extensions,
                      sizes=reader.footer, concurrency=concurrency,
                      include_paths=include_paths)


def read_csv(paths: Any, *, file_extensions: list[str] | None = None,
             concurrency: int | None = None, include_paths: bool = False,
             **arrow_csv_args: Any) -> Dataset:
    arrow_csv_args, _ = _reader_args("read_csv", arrow_csv_args)
    return _file_read("ReadCSV", paths, files.CsvReader(arrow_csv_args),
                      file_extensions=file_extensions, concurrency=concurrency,
                      include_paths=include_paths)


def read_json(paths: Any, *, lines: bool | None = None, file_extensions: list[str] | None = None,
              concurrency: int | None = None, include_paths: bool = False,
              **arrow_json_args: Any) -> Dataset:
    """JSON lines files (one object per line), or files holding one JSON array of
    objects."""
    arrow_json_args, _ = _reader_args("read_json", arrow_json_args)
    return _file_read("ReadJSON", paths, files.JsonReader(arrow_json_args),
                      file_extensions=file_extensions, concurrency=concurrency,
                      include_paths=include_paths)


def read_numpy(paths: Any, *, file_extensions: list[str] | None = None,
               concurrency: int | None = None, include_paths: bool = False,
               **numpy_load_args: Any) -> Dataset:
    """``.npy`` files; column ``"data"`` (rows along the first axis)."""
    numpy_load_args, _ = _reader_args("read_numpy", numpy_load_args)
    return _file_read("ReadNumpy", paths, files.NumpyReader(numpy_load_args),
                      file_extensions=file_extensions, concurrency=concurrency,
                      include_paths=include_paths)


def read_binary_files(paths: Any, *, include_paths: bool = False,
                      file_extensions: list[str] | None = None,
                      concurrency: int | None = None) -> Dataset:
    """One row per file: ``{"bytes": b}`` (and ``"path"`` with include_paths)."""
    return _file_read("ReadBinary", paths, files.BinaryReader(include_paths),
                      file_extensions=file_extensions, concurrency=concurrency,
                      sizes=lambda path: (1, files.file_size(path)))


def read_text(paths: Any, *, file_extensions: list[str] | None = None,
              concurrency: int | None = None, encoding: str = "utf-8") -> Dataset:
    """One row per line: ``{"text": line}``."""
    return _file_read("ReadText", paths, files.TextReader(encoding),
                      file_extensions=file_extensions, concurrency=concurrency)

