"""Blocks and batches: a block is a ``pyarrow.Table``; a batch is what a user
function sees (``batch_format``).

Why Arrow: columnar, zero-copy slices and concatenation, and readers and
writers for parquet, CSV and JSON, which is what Ray Data uses too, so user
functions written for Ray see the same types.  Columns Arrow cannot hold
natively get two extension types:

* ``ArrowTensorType`` (Arrow's own ``fixed_shape_tensor``): a column of
  equal-shaped ndarrays, one row per leading index (``range_tensor``,
  ``from_numpy`` of a 2-d array, a ``map_batches`` returning an (n, ...)
  array).  Converted back to one (n, ...) ndarray, no copy of the values.
* ``PythonObjectType``: anything else (ragged arrays, arbitrary objects),
  pickled per row.  Correct, slow; the price of accepting what Ray accepts.

Batch formats (Ray's names): ``"default"`` and ``"numpy"`` give
``dict[str, np.ndarray]``; ``"pandas"`` a ``DataFrame``; ``"pyarrow"`` the
table; ``None`` the block as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import pickle
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa


class BatchFormat(enum.Enum):
    DEFAULT = "default"
    NUMPY = "numpy"
    PANDAS = "pandas"
    PYARROW = "pyarrow"
    NATIVE = None  # the block as it is (a pyarrow.Table)

    @classmethod
    def parse(cls, value: Any, what: str) -> BatchFormat:
        if isinstance(value, BatchFormat):
            return value
        for member in cls:
            if member.value == value:
                return member
        raise ValueError(f"{what}: batch_format must be one of 'default', 'numpy', 'pandas', "
                         f"'pyarrow' or None, got {value!r}")


@dataclass(frozen=True)
class BlockMetadata:
    """What the executor knows about a block without fetching it: rows and bytes
    drive ``count()``, ``limit`` and the memory budget; the schema answers
    ``schema()``; the times feed ``stats()``."""

    num_rows: int
    size_bytes: int
    schema: pa.Schema | None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    # batches the task's user function saw and a short where-it-ran label
    node: str = ""
    # sampled key rows, when the run feeds a sort or a groupby (sort_keys.BlockSampler)
    sample: pa.Table | None = None
    # the block holds a groupby's partial states, made by the task that read its
    # rows (preaggregate.py), not rows
    states: bool = False
    # the node of the process that made the block, where it is stored
    # (streaming_split's locality_hints); "" if unknown
    node_id: str = ""


def metadata_of(table: pa.Table, wall_s: float = 0.0, cpu_s: float = 0.0,
                node: str = "") -> BlockMetadata:
    return BlockMetadata(num_rows=table.num_rows, size_bytes=table.nbytes,
                         schema=_interned(table.schema), wall_s=wall_s, cpu_s=cpu_s,
                         node=node, node_id=this_node_id())


_SCHEMAS: dict[pa.Schema, pa.Schema] = {}


def _interned(schema: pa.Schema) -> pa.Schema:
    """One object for equal schemas: a task's list of block metadata pickles it
    once, and the driver, holding thousands of blocks' metadata, one per list."""
    try:
        got = _SCHEMAS.get(schema)
    except TypeError:  # a field of an unhashable extension type
        return schema
    if got is None:
        if len(_SCHEMAS) >= 64:
            _SCHEMAS.clear()
        got = _SCHEMAS[schema] = schema
    return got


def this_node_id() -> str:
    """The node this process runs on ("" outside a cluster); ~3 us."""
    import shoal

    if not shoal.is_initialized():
        return ""
    try:
        return shoal.get_runtime_context().get_node_id() or ""
    except Exception:  # noqa: BLE001 (locality is a hint; no node id is no hint)
        return ""


class PythonObjectType(pa.ExtensionType):
    """A column of arbitrary Python objects, pickled per row."""

    def __init__(self) -> None:
        super().__init__(pa.binary(), "shoal.data.python_object")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes):
        return cls()

    def __reduce__(self):
        return PythonObjectType, ()


try:
    pa.register_extension_type(PythonObjectType())
except pa.ArrowKeyError:  # registered already (module reloaded)
    pass


def _is_tensor_type(t: pa.DataType) -> bool:
    return isinstance(t, pa.FixedShapeTensorType)


def _objects_array(values: Iterable[Any]) -> pa.Array:
    storage = pa.array([pickle.dumps(v, protocol=5) for v in values], type=pa.binary())
    return pa.ExtensionArray.from_storage(PythonObjectType(), storage)


def _tensor_array(arr: np.ndarray) -> pa.Array:
    arr = np.ascontiguousarray(arr)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(arr)


def to_arrow_column(values: Any) -> pa.Array | pa.ChunkedArray:
    """One column from what a user hands us (ndarray, list, Series, Arrow array)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if hasattr(values, "to_numpy") and hasattr(values, "dtype") and not isinstance(
            values, np.ndarray):  # a pandas Series
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.ndim > 1:
            if values.dtype == object:
                return _objects_array(list(values))
            return _tensor_array(values)
        if values.dtype == object:
            return _column_from_list(list(values))
        return pa.array(values)
    return _column_from_list(list(values))


def _column_from_list(values: list) -> pa.Array:
    if values and all(isinstance(v, np.ndarray) for v in values):
        shapes = {v.shape for v in values}
        dtypes = {v.dtype for v in values}
        if len(shapes) == 1 and len(dtypes) == 1 and values[0].dtype != object:
            return _tensor_array(np.stack(values))
        return _objects_array(values)
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return _objects_array(values)


def column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as one ndarray: tensors as (n, ...) arrays, objects unpickled."""
    if isinstance(column, pa.ChunkedArray):
        chunks = column.chunks
        if not chunks:
            return _empty_of(column.type)
        if len(chunks) > 1:
            return np.concatenate([column_to_numpy(c) for c in chunks])
        column = chunks[0]
    if _is_tensor_type(column.type):
        return column.to_numpy_ndarray()
    if isinstance(column.type, PythonObjectType):
        out = np.empty(len(column), dtype=object)
        for i, raw in enumerate(column.storage.to_pylist()):
            out[i] = pickle.loads(raw)
        return out
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_struct(column.type) or pa.types.is_map(column.type):
        out = np.empty(len(column), dtype=object)
        out[:] = column.to_pylist()
        return out
    return column.to_numpy(zero_copy_only=False)


def _empty_of(t: pa.DataType) -> np.ndarray:
    if _is_tensor_type(t):
        return np.empty((0, *t.shape), dtype=t.value_type.to_pandas_dtype())
    if isinstance(t, PythonObjectType):
        return np.empty(0, dtype=object)
    try:
        return np.empty(0, dtype=t.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        return np.empty(0, dtype=object)


def table_from_columns(columns: Mapping[str, Any]) -> pa.Table:
    arrays = {name: to_arrow_column(values) for name, values in columns.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(a)}" for k, a in arrays.items())
        raise ValueError(f"the columns of a batch must have equal lengths, got {sizes}")
    return pa.table(arrays)


def table_from_rows(rows: list[Any]) -> pa.Table:
    """Rows (dicts) to a table; a missing key is a null."""
    if not rows:
        return pa.table({})
    names: dict[str, None] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            raise TypeError(f"a row must be a dict, got {type(row).__name__}: {row!r:.100}")
        names.update(dict.fromkeys(row))
    return table_from_columns({n: [row.get(n) for row in rows] for n in names})


def to_block(batch: Any, what: str) -> pa.Table:
    """What a user function returned, as a block."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if isinstance(batch, Mapping):
        for name in batch:
            if not isinstance(name, str):
                raise TypeError(f"{what}: column names must be strings, got {name!r}")
        return table_from_columns(batch)
    if _is_pandas(batch):
        return _from_pandas(batch)
    raise TypeError(f"{what} must return a dict of columns (numpy arrays or lists), a pandas "
                    f"DataFrame or a pyarrow Table, got {type(batch).__name__}")


def _is_pandas(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pandas") and type(value).__name__ == "DataFrame"


def _from_pandas(df: Any) -> pa.Table:
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return table_from_columns({str(c): df[c].to_numpy() for c in df.columns})


def to_batch(table: pa.Table, fmt: BatchFormat) -> Any:
    if fmt in (BatchFormat.DEFAULT, BatchFormat.NUMPY):
        return {name: column_to_numpy(table.column(name)) for name in table.column_names}
    if fmt is BatchFormat.PANDAS:
        return to_pandas(table)
    return table


def to_pandas(table: pa.Table) -> Any:
    import pandas as pd

    if not any(_is_tensor_type(f.type) or isinstance(f.type, PythonObjectType)
               for f in table.schema):
        return table.to_pandas()
    data = {}
    for name in table.column_names:
        values = column_to_numpy(table.column(name))
        data[name] = list(values) if values.ndim > 1 else values
    return pd.DataFrame(data)


def rows_of(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows as dicts; tensors as ndarrays, other values as Python objects."""
    special = [n for n in table.column_names
               if _is_tensor_type(table.schema.field(n).type)
               or isinstance(table.schema.field(n).type, PythonObjectType)]
    if not special:
        yield from table.to_pylist()
        return
    arrays = {n: column_to_numpy(table.column(n)) for n in special}
    plain = table.drop_columns(special).to_pylist() if len(special) < table.num_columns \
        else [{} for _ in range(table.num_rows)]
    for i, row in enumerate(plain):
        row.update({n: arrays[n][i] for n in special})
        yield {n: row[n] for n in table.column_names}


def concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_columns or t.num_rows]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        schemas = "; ".join(sorted({str(t.schema).replace("\n", ", ") for t in tables}))
        raise ValueError(f"blocks with incompatible schemas cannot be combined ({exc}): "
                         f"{schemas}") from None


def batches_of(tables: Iterable[pa.Table], batch_size: int | None) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of ``batch_size`` rows (the last may be
    short); ``None``: each table as it comes."""
    if batch_size is None:
        for t in tables:
            if t.num_rows:
                yield t
        return
    buffer: list[pa.Table] = []
    held = 0
    for t in tables:
        while t.num_rows:
            take = min(batch_size - held, t.num_rows)
            buffer.append(t.slice(0, take))
            held += take
            t = t.slice(take)
            if held == batch_size:
                yield concat(buffer)
                buffer, held = [], 0
    if held:
        yield concat(buffer)


def blocks_of(tables: Iterable[pa.Table], max_bytes: int) -> Iterator[pa.Table]:
    """A task's output cut into blocks of at most ``max_bytes``: small tables are
    joined up to it, a larger one is sliced by rows (a single row larger than
    it stays whole); each block is compacted.  No rows at all: one empty
    block, with the schema if a table had one."""
    buffer: list[pa.Table] = []
    held, made, empty = 0, False, None
    for t in tables:
        if not t.num_rows:
            empty = t if empty is None or not empty.num_columns else empty
            continue
        if buffer and held + t.nbytes > max_bytes:
            yield compact(concat(buffer))
            buffer, held, made = [], 0, True
        if t.nbytes > max_bytes and t.num_rows > 1:  # rows of the average size each
            rows = max(1, max_bytes * t.num_rows // t.nbytes)
            for first in range(0, t.num_rows, rows):
                yield compact(t.slice(first, rows))
            made = True
            continue
        buffer.append(t)
        held += t.nbytes
    if buffer:
        yield compact(concat(buffer))
    elif not made:
        yield empty if empty is not None else pa.table({})


# Arrow converting an ndarray or a Python scalar (``take(ndarray)``, ``pa.array``,
# ``to_numpy``) imports pandas if it is installed (its pandas shim checks the
# type): 0.15-0.3 s a process, which a task that only reads, samples, sorts or
# routes blocks need not pay.  These hand numbers to and from Arrow as buffers.
def arrow_of(values: np.ndarray) -> pa.Array:
    """A 1-d numpy array of a fixed-width number type as an Arrow array."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [None, pa.py_buffer(values)])


def take_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)`` for row positions."""
    return table.take(arrow_of(np.asarray(rows, dtype=np.int64)))


def primitive_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """An integer or floating column without nulls as numpy (a view of a single
    chunk's buffer); None for any other column."""
    t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)) or column.null_count:
        return None
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
    dtype = np.dtype(f"{kind}{t.bit_width // 8}")
    views = [np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c),
                           offset=c.offset * dtype.itemsize) for c in chunks if len(c)]
    if not views:
        return np.zeros(0, dtype)
    return views[0] if len(views) == 1 else np.concatenate(views)


def int64_values(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of an int64 column without nulls."""
    values = primitive_values(column)
    assert values is not None and values.dtype == np.int64, column.type
    return values


def _libc_malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _libc_malloc_trim()


def release_unused_memory() -> None:
    """Give the pages of freed Arrow buffers back to the OS.  Arrow's allocator
    (mimalloc) keeps them for reuse, so a worker that ran one shuffle map held
    ~30-70 MB it no longer used; every shoal.data task calls this when it starts
    and when it ends (no measurable cost; MIMALLOC_PURGE_DELAY=0 did the same
    at every free and took 4x the CPU: design.md section 21)."""
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


def is_chunked(table: pa.Table) -> bool:
    """A column of several chunks (Arrow's take over chunks joins them first)."""
    return any(c.num_chunks > 1 for c in table.columns)


def pickled_bytes(table: pa.Table) -> int:
    """About what pickling ``table`` writes: each chunk carries its buffers whole,
    so chunks that are slices of one buffer each carry all of it (parquet's
    reader makes a column of a row group two such chunks: a block twice its size)."""
    return sum(b.size for column in table.columns for chunk in column.chunks
               for b in chunk.buffers() if b is not None)


def compact(table: pa.Table) -> pa.Table:
    """A copy holding only its own rows if pickling ``table`` would write more
    than its rows' bytes: a pickled slice carries its parent's whole buffers, so a
    10-row slice of a 1M-row block would store all 1M rows."""
    if table.num_rows and pickled_bytes(table) > table.nbytes * 5 // 4 + (64 << 10):
        return take_rows(table, np.arange(table.num_rows))
    return table
