"""Writing a dataset: each write task writes its blocks to one file.

File names are ``{write_id}_{key}.{ext}``, where ``key`` is the task's place
in the dataset's order (zero-padded), so a directory written by
``write_parquet`` reads back in the order it was written.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from shoal.data.block import concat, rows_of
from shoal.data.transforms import Transform

FORMATS = ("parquet", "csv", "json")


def prepare_dir(path: Any, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: path must be a directory path, got {path!r}")
    path = os.fspath(path)
    if path.startswith("local://"):
        path = path[len("local://"):]
    if "://" in path:
        raise ValueError(f"{what}: only local paths are supported, got {path!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{what}: {path!r} exists and is not a directory")
    os.makedirs(path, exist_ok=True)
    return path


@dataclass
class WriteFiles(Transform):
    fmt: str
    path: str
    name: str
    kwargs: dict = field(default_factory=dict)
    write_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    key: tuple = ()
    preserves_rows: bool = False

    def bind(self, key: tuple) -> WriteFiles:
        """A copy for one task (the program is shared by a worker's tasks)."""
        return dataclasses.replace(self, key=key)

    def apply(self, blocks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        table = concat(list(blocks))
        if table.num_rows == 0:
            yield pa.table({"path": pa.array([], pa.string()),
                            "num_rows": pa.array([], pa.int64())})
            return
        suffix = "_".join(f"{k:06d}" for k in self.key) or uuid.uuid4().hex[:8]
        target = os.path.join(self.path, f"{self.write_id}_{suffix}.{self.fmt}")
        self._write(table, target)
        yield pa.table({"path": [target], "num_rows": [table.num_rows]})

    def _write(self, table: pa.Table, target: str) -> None:
        tmp = target + ".tmp"
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, **self.kwargs)
        elif self.fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, tmp, **self.kwargs)
        else:
            _write_json_lines(table, tmp)
        os.replace(tmp, target)  # a reader never sees half a file


def _write_json_lines(table: pa.Table, target: str) -> None:
    import json

    import numpy as np

    def plain(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        return v

    with open(target, "w") as f:
        for row in rows_of(table):
            f.write(json.dumps({k: plain(v) for k, v in row.items()}, default=str))
            f.write("\n")
