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

import importlib
import importlib.util
from typing import Any

try:
    import pyarrow as _pyarrow  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "shoal.data needs pyarrow (and pandas for pandas batches): "
        "pip install 'shoal[data]'") from _exc

# name -> the module defining it, imported on first use (PEP 562): a worker
# running a read or map task imports only the modules its function needs,
# not the dataset, executor, shuffle and progress-bar modules (~0.1 s a
# process; section 21, cold start)
_DEFINED_IN = {
    "ActorPoolStrategy": "shoal.data.compute",
    "TaskPoolStrategy": "shoal.data.compute",
    "DataContext": "shoal.data.context",
    "ExecutionOptions": "shoal.data.context",
    "ExecutionResources": "shoal.data.context",
    "Dataset": "shoal.data.dataset",
    "MaterializedDataset": "shoal.data.dataset",
    "UserCodeException": "shoal.data.errors",
    "DataIterator": "shoal.data.iterator",
    "from_arrow": "shoal.data.read_api",
    "from_items": "shoal.data.read_api",
    "from_numpy": "shoal.data.read_api",
    "from_pandas": "shoal.data.read_api",
    "range": "shoal.data.read_api",
    "range_tensor": "shoal.data.read_api",
    "read_binary_files": "shoal.data.read_api",
    "read_csv": "shoal.data.read_api",
    "read_json": "shoal.data.read_api",
    "read_numpy": "shoal.data.read_api",
    "read_parquet": "shoal.data.read_api",
    "read_text": "shoal.data.read_api",
    "Schema": "shoal.data.schema",
}

__all__ = [
    "ActorPoolStrategy", "DataContext", "DataIterator", "Dataset", "ExecutionOptions",
    "ExecutionResources", "MaterializedDataset", "Schema", "TaskPoolStrategy",
    "UserCodeException", "from_arrow", "from_items", "from_numpy", "from_pandas", "range",
    "range_tensor", "read_binary_files", "read_csv", "read_json", "read_numpy",
    "read_parquet", "read_text",
]


def _in_a_task() -> bool:
    """True while a worker loads a task's function (or runs it)."""
    import shoal

    return shoal.is_initialized() and shoal.get_runtime_context().get_task_id() is not None


if not _in_a_task():  # a driver: everything now, as Ray's import does
    for _module in sorted(set(_DEFINED_IN.values())):
        importlib.import_module(_module)


def __getattr__(name: str) -> Any:
    module = _DEFINED_IN.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # ray.data.aggregate...
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
