"""``DataContext``: the knobs of shoal.data (Ray Data's name and the fields
ordinary programs touch), one per driver process.

Why a budget fraction and not a byte count by default: the same program runs
on a laptop's 1 GB store and a cluster's 100 GB; half of the store for
blocks in flight leaves the other half for the data the program holds
(materialized datasets, ``put`` values) and for the consumer's own blocks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MiB = 1 << 20


@dataclass
class ExecutionResources:
    """``object_store_memory``: bytes of blocks in flight (None: the fraction of
    the cluster's object store below)."""

    cpu: float | None = None
    object_store_memory: int | None = None


@dataclass
class ExecutionOptions:
    resource_limits: ExecutionResources = field(default_factory=ExecutionResources)
    preserve_order: bool = True  # shoal always keeps the order; the flag is accepted
    verbose_progress: bool = False


@dataclass
class DataContext:
    target_max_block_size: int = 128 * MiB
    # blocks in flight may take this fraction of the cluster's object store
    object_store_budget_fraction: float = 0.5
    # read tasks per CPU when the data is small (more tasks than CPUs balance load)
    read_tasks_per_cpu: int = 2
    enable_progress_bars: bool | None = None  # None: on a terminal only
    execution_options: ExecutionOptions = field(default_factory=ExecutionOptions)

    @staticmethod
    def get_current() -> DataContext:
        with _lock:
            global _current
            if _current is None:
                _current = DataContext()
            return _current


_lock = threading.Lock()
_current: DataContext | None = None
