"""The logical plan: what a Dataset computes, as a tree of operators.

A ``Dataset`` holds one ``LogicalOp`` (the last); each op names its inputs.
Building a plan runs nothing.  The planner (planner.py) turns the tree into
physical stages (fusing chains of maps into one task) and the executor runs
them.  Ops are frozen dataclasses so two datasets can share a prefix safely.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shoal.data.block import BlockMetadata


@dataclass(frozen=True)
class ReadTask:
    """One unit of reading: ``read()`` yields tables.  ``num_rows`` and
    ``size_bytes`` are estimates (None: unknown) used for ``count()`` without
    reading, for bundling and for the memory budget's first guess."""

    read: Callable[[], Any]
    num_rows: int | None
    size_bytes: int | None
    label: str = ""

    def limited(self, rows: int) -> ReadTask:
        """This task reading at most ``rows`` rows, if its reader can stop early
        (``read.limited(rows)``: a range, parquet row groups); else itself (it
        reads everything and the limit slices the block)."""
        cut = getattr(self.read, "limited", None)
        read = cut(rows) if cut is not None else None
        if read is None or (self.num_rows is not None and self.num_rows <= rows):
            return self
        size = self.size_bytes
        if size is not None and self.num_rows:
            size = size * rows // self.num_rows
        return ReadTask(read, None if self.num_rows is None else rows, size, self.label)


class Compute(enum.Enum):
    TASKS = "tasks"    # a stateless task per bundle of blocks
    ACTORS = "actors"  # a pool of actors holding a callable class instance


class LogicalOp:
    """Base of every operator: each has ``inputs`` (the ops it reads) and a
    ``name`` for errors, stats and progress bars."""

    if TYPE_CHECKING:
        inputs: tuple[LogicalOp, ...]
        name: str


@dataclass(frozen=True, eq=False)
class Read(LogicalOp):
    name: str
    tasks: tuple[ReadTask, ...]
    concurrency: int | None = None
    inputs: tuple[LogicalOp, ...] = ()


@dataclass(frozen=True, eq=False)
class InputData(LogicalOp):
    """Blocks that exist already (from_items, from_pandas, materialize)."""

    refs: tuple[Any, ...]
    metadata: tuple[BlockMetadata, ...]
    name: str = "InputData"
    inputs: tuple[LogicalOp, ...] = ()


@dataclass(frozen=True, eq=False)
class MapOp(LogicalOp):
    """A one-to-one transform of the stream of blocks (``transform`` is a
    ``transforms.Transform``); fusable with its neighbours."""

    input: LogicalOp
    name: str
    transform: Any
    compute: Compute = Compute.TASKS
    concurrency: int | None = None
    remote_args: dict = field(default_factory=dict)
    # map_batches' batch_size: the executor bundles blocks up to this many rows
    min_rows_per_bundle: int | None = None

    @property
    def inputs(self) -> tuple[LogicalOp, ...]:  # type: ignore[override]
        return (self.input,)


@dataclass(frozen=True, eq=False)
class Limit(LogicalOp):
    input: LogicalOp
    limit: int
    name: str = "Limit"

    @property
    def inputs(self) -> tuple[LogicalOp, ...]:  # type: ignore[override]
        return (self.input,)


@dataclass(frozen=True, eq=False)
class Union(LogicalOp):
    children: tuple[LogicalOp, ...]
    name: str = "Union"

    @property
    def inputs(self) -> tuple[LogicalOp, ...]:  # type: ignore[override]
        return self.children


class Made(enum.Enum):
    """An all-to-all output whose ref is a generator task's: its items are
    blocks, then the list of their metadata (a stage task's shape)."""

    BY_GENERATOR = "by generator"


@dataclass(frozen=True, eq=False)
class AllToAll(LogicalOp):
    """An operator that needs every input block before its first output (a
    shuffle, a sort, a repartition): ``run(refs, metadata) -> (refs, metadata)``
    is called on the driver with all of its input and starts the work; an
    output's metadata may be a ref of it (the output is still being made), or
    ``Made.BY_GENERATOR`` (the ref is a task yielding several blocks, then
    their metadata).  ``sample_key``: keys the tasks making the input sample
    (a SortKey); ``combiner``: what those tasks do to a block of few groups
    (a groupby's preaggregate.PartialAggregation)."""

    input: LogicalOp
    name: str
    run: Callable[[list, list], tuple[list, list]]
    sample_key: Any = None
    combiner: Any = None

    @property
    def inputs(self) -> tuple[LogicalOp, ...]:  # type: ignore[override]
        return (self.input,)


def limit_pushdown(op: Limit) -> LogicalOp:
    """``op``'s input with the Read under it (through maps that keep the row
    count) cut to what the limit needs: the read tasks up to the one whose rows
    reach it, each told to read no more than the rows still wanted (known
    counts: range, parquet footers).  Without known counts every task stays,
    capped at the limit, and the scheduler stops launching them once the rows
    are known to be there (schedule.py)."""
    chain: list[MapOp] = []
    node = op.input
    while isinstance(node, MapOp) and getattr(node.transform, "preserves_rows", False):
        chain.append(node)
        node = node.input
    if not isinstance(node, Read) or not node.tasks:
        return op.input
    tasks: list[ReadTask] = []
    known = 0
    for task in node.tasks:
        if known >= op.limit and tasks:
            break
        tasks.append(task.limited(op.limit - known))
        known += task.num_rows or 0
    out: LogicalOp = dataclasses.replace(node, tasks=tuple(tasks))
    for m in reversed(chain):
        out = dataclasses.replace(m, input=out)
    return out


def known_num_rows(op: LogicalOp) -> int | None:
    """Rows of ``op``'s output if the plan says so without running (count())."""
    if isinstance(op, Read):
        rows = [t.num_rows for t in op.tasks]
        return None if any(r is None for r in rows) else sum(rows)  # type: ignore[misc]
    if isinstance(op, InputData):
        return sum(m.num_rows for m in op.metadata)
    if isinstance(op, MapOp) and getattr(op.transform, "preserves_rows", False):
        return known_num_rows(op.input)
    if isinstance(op, Limit):
        below = known_num_rows(op.input)
        return None if below is None else min(below, op.limit)
    if isinstance(op, Union):
        rows = [known_num_rows(c) for c in op.children]
        return None if any(r is None for r in rows) else sum(rows)  # type: ignore[misc]
    return None


def describe(op: LogicalOp) -> str:
    """``Read[range] -> MapBatches(fn) -> Limit[5]``, for repr and stats."""
    if isinstance(op, Union):
        return "Union(" + ", ".join(describe(c) for c in op.children) + ")"
    parts = []
    node: LogicalOp | None = op
    while node is not None:
        if isinstance(node, Union):
            parts.append(describe(node))
            break
        parts.append(node.name)
        node = node.inputs[0] if node.inputs else None
    return " -> ".join(reversed(parts))
