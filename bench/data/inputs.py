"""The rows' inputs, written once per size into a cache directory as parquet
files (``BENCH_DATA_DIR``, default ``/tmp/bench-data``), so every system reads
the same bytes and no sample pays for generating them.

* ``wide``: ``id`` (int64, in order), ``key`` (int64, uniform random), ``a``,
  ``b`` (float64): 32 bytes a row; 4 GB is 125M rows.
* ``groups``: ``k1k`` (1k distinct), ``k1m`` (1M distinct), ``v`` (float64);
  100M rows.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FILES = 32


def data_dir() -> str:
    return os.environ.get("BENCH_DATA_DIR", "/tmp/bench-data")


def _write(path: str, rows: int, make) -> str:
    done = os.path.join(path, "_COMPLETE")
    if os.path.exists(done):
        return path
    os.makedirs(path, exist_ok=True)
    per = -(-rows // FILES)
    for f in range(FILES):
        lo, hi = f * per, min(rows, (f + 1) * per)
        if hi > lo:
            pq.write_table(make(f, lo, hi), os.path.join(path, f"part-{f:03d}.parquet"),
                           compression="snappy")
    open(done, "w").close()
    return os.path.join(path)


def wide(rows: int) -> str:
    def make(f: int, lo: int, hi: int) -> pa.Table:
        rng = np.random.default_rng([1, f])
        n = hi - lo
        return pa.table({"id": np.arange(lo, hi, dtype=np.int64),
                         "key": rng.integers(0, 1 << 62, n, dtype=np.int64),
                         "a": rng.random(n), "b": rng.random(n)})
    return _write(os.path.join(data_dir(), f"wide-{rows}"), rows, make)


def groups(rows: int) -> str:
    def make(f: int, lo: int, hi: int) -> pa.Table:
        rng = np.random.default_rng([2, f])
        n = hi - lo
        return pa.table({"k1k": rng.integers(0, 1_000, n, dtype=np.int64),
                         "k1m": rng.integers(0, 1_000_000, n, dtype=np.int64),
                         "v": rng.normal(size=n)})
    return _write(os.path.join(data_dir(), f"groups-{rows}"), rows, make)


def files_of(path: str) -> list[str]:
    return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".parquet"))
