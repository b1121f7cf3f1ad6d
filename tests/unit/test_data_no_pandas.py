"""Tasks that only read, sample, aggregate, sort or route blocks do not import
pandas: Arrow converting an ndarray or a Python scalar imports it (0.15-0.3 s
a worker, on the first task of a cluster), so the kernels hand numbers to
Arrow as buffers (block.arrow_of, take_rows, primitive_values)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from shoal.data.block import arrow_of, primitive_values, take_rows

KERNELS = """
import sys
import numpy as np
import pyarrow as pa
from shoal.data import exchange, sort_keys
from shoal.data.block import arrow_of
from shoal.data.aggregate import AggregationSpec, Count, Mean, Std
from shoal.data.preaggregate import PartialAggregation

n = 50_000
rng = np.random.default_rng(0)
table = pa.Table.from_arrays(
    [arrow_of(rng.integers(0, 1_000, n)), arrow_of(rng.random(n))],
    names=["k", "v"])
key = sort_keys.SortKey(("k",), (False,))
part = exchange.Partition(0, (), 0, n)
sample = sort_keys.sample(table, key, 512, 1)
bounds = sort_keys.boundaries([sample], key, 8, [float(n) / 512])
_, ranges = exchange.sort_map(table, part, 8, key=key, bounds=bounds)
for t, counts in sort_keys.split_grouped(table, ranges, 8, 2):
    exchange.sort_reduce([t], 0, key)
_, reducers = exchange.random_map(table, part, 8, seed=3)
exchange.random_reduce([table], 0, seed=3)
multi = sort_keys.SortKey(("k", "v"), (False, True))
sort_keys.range_ids(table, sort_keys.sample(table, multi, 8, 2), multi)
spec = AggregationSpec(("k",), (Count(), Mean("v"), Std("v")))  # Std: its states
states = PartialAggregation(spec)(table, 7)
assert states is not None and states.num_rows == 1_000
spec = AggregationSpec(("k",), (Count(), Mean("v")))  # (Std's combine uses to_numpy)
spec.combine([PartialAggregation(spec)(table, 7), spec.partial(table)])
print("pandas" in sys.modules)
"""


def test_the_shuffle_and_aggregation_kernels_do_not_import_pandas():
    out = subprocess.run([sys.executable, "-c", KERNELS], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("arrow_type, values", [
    (pa.int8(), [1, -2, 3]), (pa.uint32(), [1, 7, 9]), (pa.int64(), [5, 6, 7]),
    (pa.float32(), [1.5, 2.0, -3.25]), (pa.float64(), [3.0, 0.5, 1e300])])
def test_primitive_values_of_arrays_and_chunked_slices(arrow_type, values):
    array = pa.array(values, arrow_type)
    chunked = pa.chunked_array([array.slice(1, 2), array], arrow_type)
    assert primitive_values(array).tolist() == array.to_pylist()
    assert primitive_values(chunked).tolist() == chunked.to_pylist()
    back = arrow_of(primitive_values(array))
    assert back.type == arrow_type and back.equals(array)


def test_primitive_values_is_none_for_nulls_and_other_types():
    assert primitive_values(pa.array([1, None])) is None
    assert primitive_values(pa.array(["a"])) is None
    assert primitive_values(pa.array([True])) is None
    assert primitive_values(pa.chunked_array([], pa.int64())).tolist() == []


def test_take_rows_is_take():
    table = pa.table({"x": [5, 6, 7], "s": ["a", "b", "c"]})
    got = take_rows(table, np.array([2, 0, 2], dtype=np.uint64))
    assert got.equals(table.take(pa.array([2, 0, 2])))
