"""shoal.data: Ray Data's dataset API on shoal (``import shoal as ray;
ray.data.range(10)``).

Built on the public ``shoal`` API only (a test checks it), like shoal.shuffle.
Modules, one job each: plan (logical operators), planner (fusion into
stages), schedule (the streaming executor's pure state machine and memory
budget), executor (its performer thread), stage_task (what runs in a task or
actor), transforms (map, map_batches, filter, columns), block (Arrow blocks
and batch formats), read_api / files (creating and reading), datasink
(writing), iterator (fetching, batching, local shuffle), consume (running a
plan for a consuming call), splitting (split, streaming_split), dataset (the
Dataset class), compute (tasks or actors), context, progress, stats.
docs/design.md section 21 explains the executor and its memory budget.
"""

try:
    import pyarrow as _pyarrow  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "shoal.data needs pyarrow (and pandas for pandas batches): "
        "pip install 'shoal[data]'") from _exc

from shoal.data.compute import ActorPoolStrategy as ActorPoolStrategy
from shoal.data.compute import TaskPoolStrategy as TaskPoolStrategy
from shoal.data.context import DataContext as DataContext
from shoal.data.context import ExecutionOptions as ExecutionOptions
from shoal.data.context import ExecutionResources as ExecutionResources
from shoal.data.dataset import Dataset as Dataset
from shoal.data.dataset import MaterializedDataset as MaterializedDataset
from shoal.data.errors import UserCodeException as UserCodeException
from shoal.data.iterator import DataIterator as DataIterator
from shoal.data.read_api import from_arrow as from_arrow
from shoal.data.read_api import from_items as from_items
from shoal.data.read_api import from_numpy as from_numpy
from shoal.data.read_api import from_pandas as from_pandas
from shoal.data.read_api import range as range  # noqa: A004
from shoal.data.read_api import range_tensor as range_tensor
from shoal.data.read_api import read_binary_files as read_binary_files
from shoal.data.read_api import read_csv as read_csv
from shoal.data.read_api import read_json as read_json
from shoal.data.read_api import read_numpy as read_numpy
from shoal.data.read_api import read_parquet as read_parquet
from shoal.data.read_api import read_text as read_text
from shoal.data.schema import Schema as Schema

__all__ = [
    "ActorPoolStrategy", "DataContext", "DataIterator", "Dataset", "ExecutionOptions",
    "ExecutionResources", "MaterializedDataset", "Schema", "TaskPoolStrategy",
    "UserCodeException", "from_arrow", "from_items", "from_numpy", "from_pandas", "range",
    "range_tensor", "read_binary_files", "read_csv", "read_json", "read_numpy",
    "read_parquet", "read_text",
]
