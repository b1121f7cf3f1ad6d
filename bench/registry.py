"""The rows: what each measures, its unit and group, and the timing helpers rows use."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

PER_S, SEC, MB, KB, GBPS = "per second", "s", "MB", "KB", "GB/s"
OF_DISK = "x disk"  # a throughput as a fraction of the disk's, measured in the same run
HIGHER_IS_BETTER = {PER_S, GBPS, OF_DISK}
ROW_MODULES = ("rows_objects", "rows_tasks", "rows_actors", "rows_scale", "rows_cluster",
               "rows_store", "rows_spill", "rows_sort", "rows_placement")


@dataclass
class Row:
    name: str
    fn: Callable  # fn(api, ctx) -> float, or {metric name: float} for rows with several metrics
    group: str  # rows of a group share one fresh subprocess per system and repeat
    metrics: list[tuple[str, str]]  # (metric name, unit); one metric named like the row by default
    na: dict[str, str] = field(default_factory=dict)  # system -> why it has no equivalent
    mode: str = "both"  # "full": only without --quick; "quick": only with --quick
    max_repeat: int | None = None  # fewer samples for rows that take minutes
    quick_repeat: int | None = None  # the same with --quick
    timeout: float = 600.0  # seconds, per system and sample
    quick_timeout: float = 180.0  # the same with --quick
    cluster: bool = True  # False: the row starts its own processes (cold start)


ROWS: list[Row] = []
# --quick runs the microbenchmark families in one subprocess per system and repeat
QUICK_GROUPS = {"objects": "micro", "tasks": "micro", "actors": "micro", "async-actors": "micro"}


def row(name: str, *, group: str, unit: str = PER_S, metrics=None, **kwargs):
    def register(fn):
        ROWS.append(Row(name, fn, group, metrics or [(name, unit)], **kwargs))
        return fn

    return register


def all_rows() -> list[Row]:
    import importlib

    for module in ROW_MODULES:
        importlib.import_module(f"bench.{module}")
    return ROWS


class Ctx:
    """What a row gets besides the adapter: the mode and timing helpers."""

    def __init__(self, system: str, quick: bool, init_done: float):
        self.system = system
        self.quick = quick
        self.init_done = init_done  # perf_counter() when the cluster was up
        self.budget = 0.3 if quick else 2.0  # seconds of measurement per sample
        self.warmup = 0.0 if quick else 0.5  # seconds of warm-up after the first call

    def pick(self, normal, quick):
        return quick if self.quick else normal

    def _loop(self, fn) -> tuple[int, float]:
        fn()  # warm-up call: creates actors, leases workers; never measured
        end = time.perf_counter() + self.warmup
        while time.perf_counter() < end:
            fn()
        count, start = 0, time.perf_counter()
        while True:
            fn()
            count += 1
            elapsed = time.perf_counter() - start
            if elapsed >= self.budget:
                return count, elapsed

    def rate(self, fn, multiplier: float = 1.0) -> float:
        """Calls of ``fn`` per second, times ``multiplier`` (as Ray's ``timeit``)."""
        count, elapsed = self._loop(fn)
        return multiplier * count / elapsed

    def seconds(self, fn) -> float:
        """Mean seconds per call of ``fn`` after a warm-up call."""
        count, elapsed = self._loop(fn)
        return elapsed / count
