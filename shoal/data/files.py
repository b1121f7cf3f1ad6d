"""Files: finding them (files, directories, globs) and reading one file into
tables.  A reader is a small picklable object; it runs inside a read task,
and any error names the file it was reading."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from shoal.data.block import table_from_columns, table_from_rows

LOCAL_PREFIX = "local://"


def _strip(path: str) -> str:
    return path[len(LOCAL_PREFIX):] if path.startswith(LOCAL_PREFIX) else path


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def expand(paths: Any, what: str, extensions: list[str] | None) -> list[tuple[str, int]]:
    """``(path, bytes)`` of every file named by ``paths``: files, directories
    (walked, hidden files skipped) and glob patterns, in sorted order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError(f"{what}: paths must be a path or a non-empty list of paths, "
                         f"got {paths!r}")
    found: list[str] = []
    for raw in paths:
        path = _strip(os.fspath(raw))
        if "://" in path:
            raise ValueError(f"{what}: only local paths are supported, got {path!r}")
        if any(c in path for c in "*?["):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{what}: no file matches {path!r}")
            for m in matches:
                found.extend(_walk(m))
        elif os.path.isdir(path):
            found.extend(_walk(path))
        elif os.path.exists(path):
            found.append(path)
        else:
            raise FileNotFoundError(f"{what}: no such file or directory: {path!r}")
    if extensions:
        wanted = tuple("." + e.lstrip(".").lower() for e in extensions)
        found = [f for f in found if f.lower().endswith(wanted)]
    if not found:
        raise FileNotFoundError(f"{what}: no files found in {paths!r}"
                                + (f" with extensions {extensions}" if extensions else ""))
    return [(f, file_size(f)) for f in found]


def _walk(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    out = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        out += [os.path.join(folder, n) for n in sorted(names)
                if not n.startswith((".", "_"))]
    return out


class FileRead:
    """The read task of one file: ``reader(path)`` with errors naming the file."""

    def __init__(self, reader: Any, path: str, what: str, include_paths: bool = False) -> None:
        self.reader, self.path, self.what = reader, path, what
        self.include_paths = include_paths

    def limited(self, rows: int) -> FileRead | None:
        cut = getattr(self.reader, "limited", None)
        reader = cut(rows) if cut is not None else None
        return (None if reader is None
                else FileRead(reader, self.path, self.what, self.include_paths))

    def __call__(self) -> Iterator[pa.Table]:
        try:
            tables = list(self.reader(self.path))
        except Exception as exc:
            raise OSError(f"{self.what}: reading {self.path!r} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
        for table in tables:
            if self.include_paths:  # Ray's "path" column
                table = table.append_column("path", pa.repeat(pa.scalar(self.path),
                                                              table.num_rows))
            yield table


@dataclass
class ParquetReader:
    columns: list[str] | None
    kwargs: dict = field(default_factory=dict)
    max_rows: int | None = None  # a limit pushed down: read only the row groups it needs

    def __call__(self, path: str) -> Iterator[pa.Table]:
        import pyarrow.parquet as pq

        if self.kwargs:  # filters= and the like: Arrow's dataset reader
            yield pq.read_table(path, columns=self.columns, **self.kwargs)
            return
        if self.max_rows is None:  # the file reader, on this task's thread (design.md 21)
            # Memory-mapped: by default the reader also buffered the file's raw bytes
            # in Arrow memory, held while the table lived (a 121 MB table from a 114 MB
            # file held 229 MB of Arrow memory; mapped, 121).  Closed before the table
            # goes on, so the mapping is not held while the block is stored.
            with pq.ParquetFile(path, memory_map=True) as file:
                table = file.read(columns=self.columns, use_threads=False)
            yield table
            return
        with pq.ParquetFile(path) as file:
            groups, rows = [], 0
            for g in range(file.metadata.num_row_groups):
                if rows >= self.max_rows and groups:
                    break
                groups.append(g)
                rows += file.metadata.row_group(g).num_rows
            table = file.read_row_groups(groups, columns=self.columns)
        yield table.slice(0, self.max_rows)

    def limited(self, rows: int) -> ParquetReader | None:
        """Row groups are cut only when nothing else chooses rows (a filter would)."""
        if self.kwargs:
            return None
        return ParquetReader(self.columns, {}, rows)

    def footer(self, path: str) -> tuple[int | None, int]:
        """(rows, uncompressed bytes of the columns read) from the footer."""
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:
            raise OSError(f"ReadParquet: {path!r} is not a readable parquet file: "
                          f"{exc}") from exc
        wanted = set(self.columns) if self.columns else None
        size = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                col = group.column(c)
                if wanted is None or col.path_in_schema.split(".")[0] in wanted:
                    size += col.total_uncompressed_size
        return meta.num_rows, size


@dataclass
class CsvReader:
    kwargs: dict

    def __call__(self, path: str) -> Iterator[pa.Table]:
        import pyarrow.csv as pcsv

        yield pcsv.read_csv(path, **self.kwargs)


@dataclass
class JsonReader:
    kwargs: dict

    def __call__(self, path: str) -> Iterator[pa.Table]:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
        if head.startswith(b"["):
            with open(path) as f:
                rows = json.load(f)
            yield table_from_rows(rows)
            return
        import pyarrow.json as pjson

        yield pjson.read_json(path, **self.kwargs)


@dataclass
class NumpyReader:
    kwargs: dict

    def __call__(self, path: str) -> Iterator[pa.Table]:
        data = np.load(path, **self.kwargs)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                yield table_from_columns({k: data[k] for k in data.files})
            return
        yield table_from_columns({"data": data})


@dataclass
class BinaryReader:
    include_paths: bool

    def __call__(self, path: str) -> Iterator[pa.Table]:
        with open(path, "rb") as f:
            data = f.read()
        columns: dict[str, Any] = {"bytes": pa.array([data], type=pa.binary())}
        if self.include_paths:
            columns["path"] = pa.array([path])
        yield pa.table(columns)


@dataclass
class TextReader:
    encoding: str

    def __call__(self, path: str) -> Iterator[pa.Table]:
        with open(path, encoding=self.encoding) as f:
            lines = f.read().splitlines()
        yield pa.table({"text": pa.array(lines, type=pa.string())})
