"""From the logical plan to stages the scheduler runs: fuse chains of maps.

Fusion is why a ``read -> map -> filter -> map_batches`` pipeline makes one
task per block and stores one block per task instead of four: the steps run
as a generator chain inside the task (transforms.py).  Rules:

* a map on tasks fuses into the map stage before it when that stage runs on
  tasks with the same resource arguments (a pure read stage takes the map's);
* a map on actors (a callable class) takes the task-based stage before it
  into its actors: the read and row maps run in the actor too, so a pool
  holding every CPU still gets input;
* a stage's bundle size is the largest ``batch_size`` fused into it, so a
  ``map_batches(batch_size=4096)`` over 1000-row blocks gets full batches.

Nothing here runs anything, except ``AllToAll`` ops, whose input must exist
before they start: the caller's ``run_all_to_all`` executes that sub-plan and
starts the operation, which returns its outputs' refs at once (with their
metadata, or refs of it while they are being made).  The op becomes an
EXCHANGE stage: its outputs flow into the stages after it as each is made.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.data.block import BlockMetadata
from shoal.data.plan import (
    AllToAll,
    Compute,
    InputData,
    Limit,
    LogicalOp,
    Made,
    MapOp,
    Read,
    ReadTask,
    Union,
    limit_pushdown,
)
from shoal.data.schedule import Item, Key, StageKind, StageSpec
from shoal.data.transforms import Transform


@dataclass
class Stage:
    """A physical stage: the scheduler's spec plus what the performer needs."""

    name: str
    kind: StageKind
    upstream: list[int] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)
    compute: Compute = Compute.TASKS
    concurrency: Any = None
    remote_args: dict = field(default_factory=dict)
    min_rows_per_bundle: int | None = None
    limit: int | None = None
    items: list[Item] = field(default_factory=list)
    reads: bool = False  # a MAP stage whose inputs are read tasks
    sampler: Any = None  # a MAP stage's tasks sample their blocks' keys (BlockSampler)
    combiner: Any = None  # ... and aggregate blocks of few groups (PartialAggregation)

    def spec(self, max_running: int) -> StageSpec:
        keeps_rows = all(getattr(t, "preserves_rows", False) for t in self.transforms)
        return StageSpec(name=self.name, kind=self.kind, upstream=tuple(self.upstream),
                         max_running=max_running, min_rows_per_bundle=self.min_rows_per_bundle,
                         limit=self.limit, items=tuple(self.items), preserves_rows=keeps_rows)


@dataclass(frozen=True)
class BeingMade:
    """An EXCHANGE item not made yet: its block's ref and its metadata's ref, or
    (block None) the ref of a generator task yielding blocks, then their metadata."""

    block: Any
    metadata: Any


@dataclass
class PhysicalPlan:
    stages: list[Stage]
    objects: dict[int, Any]  # handle -> ObjectRef (a block), ReadTask or BeingMade
    next_handle: itertools.count


def plan(root: LogicalOp,
         run_all_to_all: Callable[[AllToAll], tuple[list, list]]) -> PhysicalPlan:
    builder = _Builder(run_all_to_all)
    last = builder.build(root, ())
    builder.stages.append(Stage(name="Output", kind=StageKind.OUTPUT, upstream=[last]))
    return PhysicalPlan(builder.stages, builder.objects, builder.handles)


class _Builder:
    def __init__(self, run_all_to_all: Callable[[AllToAll], tuple[list, list]]) -> None:
        self.stages: list[Stage] = []
        self.objects: dict[int, Any] = {}
        self.handles = itertools.count()
        self.run_all_to_all = run_all_to_all

    def _add(self, stage: Stage) -> int:
        self.stages.append(stage)
        return len(self.stages) - 1

    def _source(self, name: str, things: list[tuple[Any, int | None, int, bool]],
                prefix: Key, kind: StageKind = StageKind.SOURCE) -> int:
        items = []
        for j, (obj, rows, size, counted) in enumerate(things):
            handle = next(self.handles)
            self.objects[handle] = obj
            items.append(Item(key=prefix + (j,), handle=handle, rows=rows, size=size,
                              counted=counted))
        return self._add(Stage(name=name, kind=kind, items=items))

    def build(self, op: LogicalOp, prefix: Key) -> int:
        if isinstance(op, Read):
            src = self._source(op.name, [(t, t.num_rows, t.size_bytes or 0, False)
                                         for t in op.tasks], prefix)
            return self._add(Stage(name=op.name, kind=StageKind.MAP, upstream=[src],
                                   reads=True, concurrency=op.concurrency))
        if isinstance(op, InputData):
            things = [(r, m.num_rows, m.size_bytes, False)
                      for r, m in zip(op.refs, op.metadata, strict=True)]
            return self._source(op.name, things, prefix)
        if isinstance(op, MapOp):
            return self._map(op, self.build(op.input, prefix))
        if isinstance(op, Limit):
            below = self.build(limit_pushdown(op), prefix)
            return self._add(Stage(name=f"Limit[{op.limit}]", kind=StageKind.LIMIT,
                                   upstream=[below], limit=op.limit))
        if isinstance(op, Union):
            children = [self.build(c, prefix + (n,)) for n, c in enumerate(op.children)]
            return self._add(Stage(name="Union", kind=StageKind.UNION, upstream=children))
        if isinstance(op, AllToAll):
            # its outputs are data, like materialized blocks, so they do not count
            # against the budget (a sort of twice the store would otherwise leave
            # downstream stages one task at a time)
            refs, metadata = self.run_all_to_all(op)
            things: list[tuple[Any, int | None, int, bool]] = []
            for ref, meta in zip(refs, metadata, strict=True):
                if isinstance(meta, BlockMetadata):
                    things.append((ref, meta.num_rows, meta.size_bytes, False))
                elif meta is Made.BY_GENERATOR:  # adopted like a stage task
                    things.append((BeingMade(None, ref), None, 0, False))
                else:
                    things.append((BeingMade(ref, meta), None, 0, False))
            return self._source(op.name, things, prefix, StageKind.EXCHANGE)
        raise TypeError(f"unknown logical operator {type(op).__name__}")

    def _map(self, op: MapOp, below: int) -> int:
        prev = self.stages[below]
        if self._fusable(prev, op):
            prev.name = f"{prev.name}->{op.name}"
            prev.transforms.append(op.transform)
            if op.compute is Compute.ACTORS or not prev.transforms[:-1]:
                prev.remote_args = dict(op.remote_args)
            prev.compute = op.compute
            if op.concurrency is not None:
                prev.concurrency = op.concurrency
            if op.min_rows_per_bundle:
                prev.min_rows_per_bundle = max(prev.min_rows_per_bundle or 0,
                                               op.min_rows_per_bundle)
            return below
        return self._add(Stage(name=op.name, kind=StageKind.MAP, upstream=[below],
                               transforms=[op.transform], compute=op.compute,
                               concurrency=op.concurrency, remote_args=dict(op.remote_args),
                               min_rows_per_bundle=op.min_rows_per_bundle))

    @staticmethod
    def _fusable(prev: Stage, op: MapOp) -> bool:
        if prev.kind is not StageKind.MAP or prev.compute is not Compute.TASKS:
            return False
        if prev.concurrency is not None and op.compute is Compute.TASKS \
                and op.concurrency not in (None, prev.concurrency):
            return False
        pure_read = prev.reads and not prev.transforms
        return pure_read or op.compute is Compute.ACTORS or prev.remote_args == op.remote_args


def is_read_task(obj: Any) -> bool:
    return isinstance(obj, ReadTask)
