"""All-to-all operations on Arrow blocks through ``shoal.shuffle``: the glue
between a dataset's blocks and the shuffle library, and the map and reduce
kernels of random_shuffle, sort, groupby and repartition.

::

    blocks (refs) --group--> partitions --map--> one Run per group of reducers
                                              --merge (push)--> Runs
                                                     --reduce (a generator task per group)-->
                                                         one block per reducer, then their metadata

* A *partition* (one map's input) is a few consecutive blocks of at least a
  target size, passed as refs inside a ``Partition``: small blocks are
  coalesced so a dataset of many tiny blocks does not make M x R tinier ones.
* Reducers go in ``Groups`` of consecutive ones, so a map makes a few pieces
  of about PIECE_TARGET_BYTES instead of one small store object per reducer,
  while the outputs stay many and small (``default_outputs``: the store's
  holes).  A map returns one ``Run`` (its index, a compact table ordered by
  reducer and each reducer's row count) per group; the push strategy's merges
  join Runs into ``Runs`` without copying tables into one; a reduce puts the
  runs in map order before its kernel sees them, so the output does not depend
  on which maps a merge grouped (same seed, same shuffle; a stable sort stays
  stable).
* Key ranges (sort, groupby) come from a sample of every block's keys
  (sort_keys.py), taken by the tasks that made the blocks (``sample_key``: the
  executor asks them to) or, for blocks that existed before, in tasks before
  the shuffle starts.
* ``run`` returns as soon as the shuffle is started: the refs of the reduce
  tasks, whose blocks the executor takes like a stage task's.  So the caller
  drops its refs of the input at once, and each input block is held only by
  the map that reads it (lineage rebuilds it if a node loss needs it again);
  the stages after the shuffle take each output as its reduce finishes.

Everything here that runs in a task is a plain module-level function or a
frozen dataclass, so lineage can re-run it after a node dies.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import shoal
from shoal.data import preaggregate, sort_keys
from shoal.data.aggregate import AggregationSpec
from shoal.data.block import (
    BlockMetadata,
    compact,
    concat,
    is_chunked,
    metadata_of,
    release_unused_memory,
    take_rows,
)
from shoal.data.context import DataContext
from shoal.data.plan import Made
from shoal.shuffle import shuffle

MiB = 1 << 20
MIN_PARTITION_BYTES = 1 * MiB
# a partition's target share of the object store: each running map adds about
# its partition to the peak (1/32 of a 1 GiB store peaked 45 MB higher than 1/64
# in the 250 MB random_shuffle)
STORE_FRACTION_PER_PARTITION = 1 / 64
# ... or larger when the store is small against the data (partition_target_bytes),
# up to this share
MAX_STORE_FRACTION_PER_PARTITION = 1 / 16
PIECES_PER_REDUCE_TASK = 2  # see partition_target_bytes
MAX_OUTPUTS = 4096
OUTPUTS_PER_MAP = 16  # see default_outputs
# a map's piece for one reducer stays a store object: well above the 100 KiB
# under which a task's return travels inline, through the driver's memory
MIN_PIECE_BYTES = 128 << 10
# a map's piece for a group of reducers (Groups): a store object costs ~1 ms of
# CPU to create, seal, read and free, and 16 maps x 64 reducers made 1,024 of
# 256 KiB.  2 MiB took another 7-18% of CPU off random_shuffle but peaked
# ~30 MB higher (a reduce holds its group's inputs until its last output)
PIECE_TARGET_BYTES = 1 << 20
TASK_MAX_RETRIES = 10  # as the shuffle's own tasks: node losses a task survives


@dataclass(frozen=True)
class Partition:
    """One map's input: consecutive blocks (refs) and the index of its first row;
    or, with ``offset``, ``num_rows`` rows of one block from there (a block
    larger than a map's share is cut: see ``partitions``)."""

    index: int
    refs: tuple[Any, ...]
    first_row: int
    num_rows: int
    offset: int | None = None


@dataclass(frozen=True)
class Groups:
    """Reducers in groups of ``size`` consecutive ones: a map makes one piece
    (one store object) per group, and one reduce task makes the group's
    outputs, one block each (design.md section 21, "Groups")."""

    reducers: int
    size: int

    @property
    def count(self) -> int:
        return -(-self.reducers // self.size)

    def members(self, group: int) -> range:
        return range(group * self.size, min(self.reducers, (group + 1) * self.size))


@dataclass(frozen=True)
class Run:
    """The rows one map sends one group of reducers: ``table`` holds them
    reducer by reducer, ``counts[j]`` rows for the group's ``j``-th."""

    map_index: int
    table: pa.Table
    counts: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return self.table.nbytes

    def part(self, j: int) -> pa.Table:
        return self.table.slice(sum(self.counts[:j]), self.counts[j])


@dataclass(frozen=True)
class Runs:
    """Runs of several maps for one group (a push merge's output)."""

    runs: tuple[Run, ...]

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.runs)


def _flat(blocks: Sequence[Run | Runs]) -> list[Run]:
    out: list[Run] = []
    for b in blocks:
        out.extend(b.runs if isinstance(b, Runs) else (b,))
    return out


def merge_runs(*blocks: Run | Runs) -> Runs:
    return Runs(tuple(r for r in _flat(blocks) if r.table.num_rows))


def _partition_tables(part: Partition) -> pa.Table:
    tables = shoal.get(list(part.refs)) if part.refs else []
    if part.offset is not None:
        return tables[0].slice(part.offset, part.num_rows)
    return concat(list(tables))


def map_entry(part: Partition, num_groups: int, kernel: Callable,
              groups: Groups) -> Iterator[Run]:
    """A shuffle map (``num_groups``: the library's reducers, ``groups.count``):
    ``kernel`` tells each row's reducer; the rows are ordered by reducer (one
    stable counting sort) and cut into one Run per group, each yielded (so
    stored) before the next is gathered: the map holds one piece, not its whole
    partition twice."""
    release_unused_memory()  # what the last task freed
    table, reducer_of_row = kernel(_partition_tables(part), part, groups.reducers)
    # 2 bytes a row while the rows are ordered (a sort's range ids come as 8)
    reducer_of_row = sort_keys.narrow(reducer_of_row, groups.reducers)
    for t, c in sort_keys.split_grouped(table, reducer_of_row, groups.reducers, groups.size):
        yield Run(part.index, compact(t), tuple(c))
        del t
    del table, reducer_of_row
    release_unused_memory()


def reduce_entry(*blocks_then_group: Any, kernel: Callable, groups: Groups,
                 fit_holes: bool = False) -> Iterator[Any]:
    """A shuffle reduce of one group (a generator task): for each of its reducers,
    that reducer's rows of every run in map order, combined by ``kernel``, yielded
    as blocks (one, or with ``fit_holes`` several no larger than the pieces it
    read: ``hole_bytes``); then the list of their metadata."""
    *blocks, group = blocks_then_group
    release_unused_memory()  # what the last task freed
    max_bytes = hole_bytes([b.nbytes for b in blocks]) if fit_holes else None
    runs = sorted(_flat(blocks), key=lambda r: r.map_index)
    del blocks
    metas = []
    for j, reducer in enumerate(groups.members(group)):
        made = kernel([r.part(j) for r in runs], reducer)
        for out in reducer_blocks(made, max_bytes):
            out = compact(out)
            metas.append(metadata_of(out))
            yield out
            del out
        del made
        release_unused_memory()
    yield metas


def hole_bytes(piece_bytes: list[int]) -> int:
    """The largest block a reduce yields when the caller did not ask for a number
    of outputs: the smallest stored piece it read, so a block fits the hole one
    piece like it leaves.  An output the size of ``maps`` pieces found a hole
    only once ~``maps / group size`` neighbouring pieces were free, so the
    store's pages touched passed its peak use by 0.2-0.5 GB in a 4 GB shuffle;
    blocks at 0.9 of a piece left slivers no block fitted (+0.3 GB), and half a
    piece did worse in a sort, whose pieces vary from range to range (design.md
    section 21, "Blocks the size of the holes")."""
    stored = [b for b in piece_bytes if b >= MIN_PIECE_BYTES]  # smaller ones travel inline
    return min(stored, default=MIN_PIECE_BYTES)


@dataclass(frozen=True)
class Gather:
    """A reduce kernel's output: ``table``'s rows in the order ``rows``, gathered
    block by block (a slice of one gathered table would be copied again)."""

    table: pa.Table
    rows: np.ndarray


def reducer_blocks(made: pa.Table | Gather, max_bytes: int | None) -> Iterator[pa.Table]:
    """A reducer's output as consecutive blocks of at most about ``max_bytes``."""
    table = made.table if isinstance(made, Gather) else made
    rows = len(made.rows) if isinstance(made, Gather) else table.num_rows
    row_bytes = table.nbytes / max(1, table.num_rows)
    count = 1 if max_bytes is None else max(1, math.ceil(rows * row_bytes / max_bytes))
    if isinstance(made, Gather) and count > 1 and is_chunked(table):
        table = table.combine_chunks()  # Arrow's take joins the chunks itself, at every take
    for k in range(count):
        lo, hi = rows * k // count, rows * (k + 1) // count
        if hi == lo and count > 1:
            continue
        if isinstance(made, Gather):
            yield take_rows(table, made.rows[lo:hi])
        else:
            yield table.slice(lo, hi - lo) if count > 1 else table


def _sample(sampler: sort_keys.BlockSampler, first: int, *blocks: pa.Table) -> list[pa.Table]:
    """The samples of blocks no task sampled when it made them (existing data)."""
    out = []
    for i, block in enumerate(blocks):
        sampler.key.check(block, "sort")
        got = sampler(block, first + i)
        out.append(block.select(list(sampler.key.columns)) if got is None else got)
    return out


_remote_sample = shoal.remote(max_retries=TASK_MAX_RETRIES)(_sample)
_remote_boundaries = shoal.remote(max_retries=TASK_MAX_RETRIES)(sort_keys.boundaries)


# ---- partitions and the shuffle call -------------------------------------------------------
def _store_bytes() -> float:
    return shoal.cluster_resources().get("object_store_memory", 1 << 30)


def partition_target_bytes(ctx: DataContext, total: int = 0) -> int:
    return partition_target(_store_bytes(), total, ctx.target_max_block_size)


def partition_target(store: float, total: int, max_block: int) -> int:
    """A map's input: a share of the store, and, for ``total`` bytes to shuffle,
    at least what keeps a map's piece for a group of reducers near
    PIECES_PER_REDUCE_TASK x MIN_PIECE_BYTES (a piece is about
    ``target^2 x group / total``: store / 64 of a 125 MB store made 8,192
    pieces of 31 KB for 250 MB), within MAX_STORE_FRACTION_PER_PARTITION."""
    target = max(MIN_PARTITION_BYTES, store * STORE_FRACTION_PER_PARTITION,
                 min(math.sqrt(total * PIECES_PER_REDUCE_TASK * MIN_PIECE_BYTES),
                     store * MAX_STORE_FRACTION_PER_PARTITION))
    return int(min(max_block, target))


def block_sampler(key: sort_keys.SortKey, ctx: DataContext) -> sort_keys.BlockSampler:
    """How the tasks making an exchange's input sample its keys: SAMPLES_PER_RANGE
    rows per partition's bytes, as an output range is about one partition."""
    # a range is half a partition when the data fits the store (Exchange.run)
    return sort_keys.BlockSampler(key, max(1, partition_target_bytes(ctx) // 2
                                           // sort_keys.SAMPLES_PER_RANGE))


def default_strategy() -> str:
    """Push on several nodes (a reducer's blocks gather on its node while maps
    run); simple on one, where push's merges only copy every byte once more and
    its rounds throttle the maps: a 200 MB sort on a 64 MiB store took 9-13 s
    simple, 17.5 s push, 23-26 s premerge (2 CPUs, loaded machine)."""
    nodes = [n for n in shoal.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    return "push" if len(nodes) > 1 else "simple"


def partitions(refs: Sequence[Any], metas: Sequence[BlockMetadata],
               target: int, cut: bool = False) -> list[Partition]:
    """Consecutive non-empty blocks grouped until a group reaches ``target`` bytes;
    with ``cut``, a block of at least 1.5 ``target`` is cut into row ranges of
    about ``target``.  Why cut: a map holds its input while it stores pieces of
    the same size, so each running map adds its partition to the store's peak;
    the ranges of one block run side by side (maps go in order) and free it
    together.  The exchange cuts (and halves its target) only when the data fits
    the store: out of core, the extra maps' pieces cost more I/O than the peak
    saved (design.md section 21, "Blocks the size of the holes")."""
    out: list[Partition] = []
    group: list[Any] = []
    size = rows = first = 0
    for ref, meta in zip(refs, metas, strict=True):
        if meta.num_rows == 0:
            continue
        if cut and not group and meta.size_bytes >= 1.5 * target and meta.num_rows > 1:
            cuts = min(round(meta.size_bytes / target), meta.num_rows)  # 2 or more
            for k in range(cuts):
                lo, hi = meta.num_rows * k // cuts, meta.num_rows * (k + 1) // cuts
                out.append(Partition(len(out), (ref,), first + lo, hi - lo, offset=lo))
            first += meta.num_rows
            continue
        group.append(ref)
        size += meta.size_bytes
        rows += meta.num_rows
        if size >= target:
            out.append(Partition(len(out), tuple(group), first, rows))
            first += rows
            group, size, rows = [], 0, 0
    if group:
        out.append(Partition(len(out), tuple(group), first, rows))
    return out


def default_outputs(maps: int, total: int, target: int) -> int:
    """OUTPUTS_PER_MAP per map while a map's pieces stay MIN_PIECE_BYTES or more;
    at least one per map, and outputs no larger than a partition (large input
    blocks, one read task's file, still make blocks a stage can hold).

    Why several per map: the store puts an object in the lowest hole that holds
    it, and a map's piece for one reducer is 1/R of its partition, laid out next
    to its pieces for the other reducers.  A reduce output (``maps`` pieces'
    worth) finds no hole until about ``maps`` neighbouring reducers have freed
    their pieces, so the first outputs go above everything else: the store's
    high-water mark (pages touched, which stay resident) passes its peak use
    by about ``total * maps / R``.  With R = maps: a whole copy (random_shuffle
    of 250 MB: 525 MB of store pages against 285 MB in use); with 4 per map a
    quarter of one (290 MB); with 16 a sixteenth (4 GB on a 6 GB store: peak
    of all processes 5.48 -> 4.93-4.95 GB, sort 5.50 -> 4.99-5.01, same time;
    32 took only another ~0.05 GB off)."""
    spread = min(OUTPUTS_PER_MAP * maps, max(1, total // maps // MIN_PIECE_BYTES))
    return min(MAX_OUTPUTS, max(maps, -(-total // target), spread))


@dataclass
class Exchange:
    """One all-to-all operation: how to split a partition and combine a reducer's
    runs, and how many outputs (None: one per partition)."""

    name: str
    map_kernel: Callable  # (table, partition, num_reducers) -> (table, reducer of each row)
    reduce_kernel: Callable  # (tables in map order, reducer) -> table or Gather
    num_outputs: int | None = None
    ranges: sort_keys.SortKey | None = None  # sample these keys first (range partitioning)
    bounds: pa.Table | None = None  # or cut at these rows (sort's boundaries=)
    spec: AggregationSpec | None = None  # a groupby's: few groups skip the shuffle

    @property
    def combiner(self) -> preaggregate.PartialAggregation | None:
        """What the tasks making a groupby's input do to a block of few groups."""
        return None if self.spec is None else preaggregate.PartialAggregation(self.spec)

    @property
    def sample_key(self) -> sort_keys.SortKey | None:
        """Keys the tasks making the input should sample (``AllToAll.sample_key``)."""
        return self.ranges if self.bounds is None else None

    def run(self, refs: list, metas: list) -> tuple[list, list]:
        """``AllToAll.run``: start the shuffle; the refs of its reduce tasks (each
        yields its group's blocks, then their metadata), at once."""
        ctx = DataContext.get_current()
        total = sum(m.size_bytes for m in metas)
        store = _store_bytes()
        target = partition_target(store, total, ctx.target_max_block_size)
        if self.spec is not None:  # rows and states (preaggregate.py) apart
            is_states = [getattr(m, "states", False) for m in metas]
            parts = partitions([r for r, s in zip(refs, is_states, strict=True) if not s],
                               [m for m, s in zip(metas, is_states, strict=True) if not s],
                               target)
            states = [(r, m) for r, m, s in zip(refs, metas, is_states, strict=True) if s]
            state_rows = sum(m.num_rows for _, m in states)
            few = _few_groups_path(self.spec, parts, states, state_rows, metas)
            if few is not None:
                return few
            parts += [dataclasses.replace(p, index=p.index + len(parts))
                      for p in partitions([r for r, _ in states], [m for _, m in states],
                                          target)]
        else:
            fits = total <= store
            if fits:  # smaller maps: each running one adds its partition to the peak
                target = max(1, target // 2)
            parts = partitions(refs, metas, target, cut=fits)
        if not parts:
            return [], []
        reducers = self.num_outputs or default_outputs(len(parts), total, target)
        map_kernel = self.map_kernel
        if self.bounds is not None:
            reducers = self.bounds.num_rows + 1
            map_kernel = functools.partial(map_kernel, bounds=self.bounds)
        elif self.ranges is not None:
            bounds = _boundaries(refs, metas, block_sampler(self.ranges, ctx), reducers)
            map_kernel = functools.partial(map_kernel, bounds=bounds)
        if len(parts) == 1:  # one map: no shuffle (its actor and driver thread cost ~1 s)
            ref = _remote_map_and_reduce.remote(parts[0], reducers, map_kernel,
                                                self.reduce_kernel)
            return [ref], [Made.BY_GENERATOR]
        groups = Groups(reducers, group_size(total, len(parts), reducers, target))
        outputs = shuffle(
            parts, functools.partial(map_entry, kernel=map_kernel, groups=groups),
            functools.partial(reduce_entry, kernel=self.reduce_kernel, groups=groups,
                              fit_holes=not (self.num_outputs or self.spec)),
            num_reducers=groups.count, merge_fn=merge_runs,
            partition_bytes=max(1, total // len(parts)),
            reduce_args=lambda k: (k,), progress=_bars_on(ctx), label=self.name,
            strategy=ctx.shuffle_strategy or default_strategy(),
            reduce_num_returns="dynamic")
        return list(outputs), [Made.BY_GENERATOR] * len(outputs)


def group_size(total: int, maps: int, reducers: int, target: int) -> int:
    """Reducers per group: enough that a map's piece for a group is about
    PIECE_TARGET_BYTES (each piece a store object to create, seal, read and
    free), while a reduce task reads at most two partitions' worth (its
    outputs are made one at a time, but its inputs stay until its last one)."""
    piece = total / max(1, maps * reducers)
    output = total / max(1, reducers)
    size = min(round(PIECE_TARGET_BYTES / max(piece, 1.0)), int(2 * target // max(output, 1.0)))
    return max(1, min(reducers, size))


def _map_and_reduce(part: Partition, reducers: int, map_kernel: Callable,
                    reduce_kernel: Callable) -> Iterator[Any]:
    """One partition: map and every reduce in one generator task."""
    groups = Groups(reducers, reducers)
    runs = list(map_entry(part, 1, map_kernel, groups))
    yield from reduce_entry(*runs, 0, kernel=reduce_kernel, groups=groups)


_remote_map_and_reduce = shoal.remote(num_returns="dynamic",
                                      max_retries=TASK_MAX_RETRIES)(_map_and_reduce)


# ---- a groupby of few groups: partial states per partition, one combining task --------------
MAX_COMBINED_STATE_ROWS = 1_000_000  # state rows one task may combine (~ 24-48 MB)


def estimated_groups(metas: Sequence[BlockMetadata], keys: Sequence[str]) -> float | None:
    """The groups, estimated from the keys the tasks making the blocks sampled
    (``preaggregate.estimated_groups``); None if a block was not sampled."""
    samples = [getattr(m, "sample", None) for m in metas if m.num_rows]
    if not samples or any(s is None for s in samples):
        return None
    return preaggregate.estimated_groups(samples, keys)


def _partial_states(spec: AggregationSpec, part: Partition) -> pa.Table:
    release_unused_memory()
    return compact(spec.partial(_partition_tables(part)))


def _combine_states(spec: AggregationSpec, *states: pa.Table) -> Iterator[Any]:
    out = compact(spec.combine([s for s in states if s.num_columns]))
    yield out
    yield [metadata_of(out)]


_remote_partial_states = shoal.remote(max_retries=TASK_MAX_RETRIES)(_partial_states)
_remote_combine_states = shoal.remote(num_returns="dynamic",
                                      max_retries=TASK_MAX_RETRIES)(_combine_states)


def _few_groups_path(spec: AggregationSpec, parts: list[Partition], states: list,
                     state_rows: int, metas: Sequence[BlockMetadata]) -> tuple[list, list] | None:
    """A groupby's input is few state rows (states made by the read tasks, and
    those each partition of rows would make): a task per partition of rows makes
    its states and one task combines them all; None if a shuffle is needed.
    Why: with few groups a shuffle would still cost an actor, a driver thread and
    a reducer per 4 MB of *input* (a 1k-group mean of 100 MB: 24 reducers of 40
    rows each, 0.6 s where the read took 0.3)."""
    if not parts and not states:
        return None
    if parts and len(parts) + len(states) > 1:
        groups_seen = estimated_groups(metas, spec.keys)
        if groups_seen is None:
            return None
        state_rows += int(groups_seen * len(parts))
    elif parts:
        return None  # one partition of rows: map and reduce in one task already
    if state_rows > MAX_COMBINED_STATE_ROWS:
        return None
    made = [_remote_partial_states.remote(spec, p) for p in parts]
    return [_remote_combine_states.remote(spec, *made, *[r for r, _ in states])], \
        [Made.BY_GENERATOR]


SAMPLE_TASK_BLOCKS = 16  # blocks one sampling task reads (existing data only)


def _boundaries(refs: list, metas: list, sampler: sort_keys.BlockSampler,
                ranges: int) -> pa.Table:
    """Cut points at the quantiles of every block's sample, each sampled row
    weighted by the rows it stands for; blocks whose makers did not sample them
    are sampled here, a few per task."""
    samples: list[pa.Table | None] = [getattr(m, "sample", None) for m in metas]
    todo = [i for i, (m, got) in enumerate(zip(metas, samples, strict=True))
            if got is None and m.num_rows]
    tasks = [(chunk, _remote_sample.remote(sampler, chunk[0], *[refs[i] for i in chunk]))
             for chunk in (todo[j:j + SAMPLE_TASK_BLOCKS]
                           for j in range(0, len(todo), SAMPLE_TASK_BLOCKS))]
    for chunk, ref in tasks:
        for i, got in zip(chunk, shoal.get(ref), strict=True):
            samples[i] = got
    kept = [(s, m.num_rows) for s, m in zip(samples, metas, strict=True) if s is not None]
    # in a task: the first sort kernel a process runs costs it ~35 MB (Arrow's
    # compute registry), which the driver need not pay (workers have paid it)
    return shoal.get(_remote_boundaries.remote([s for s, _ in kept], sampler.key, ranges,
                                               [sort_keys.weight(rows, s) for s, rows in kept]))


# ---- kernels ----------------------------------------------------------------------------
def random_map(table: pa.Table, part: Partition, num_reducers: int,
               seed: int) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng([seed, part.index])
    small = np.uint16 if num_reducers <= 1 << 16 else np.int64  # 2 bytes a row, not 8
    return table, rng.integers(num_reducers, size=table.num_rows, dtype=small)


def random_reduce(tables: list[pa.Table], reducer: int, seed: int) -> Gather:
    table = concat(tables)
    rng = np.random.default_rng([seed, reducer, 1])
    return Gather(table, rng.permutation(table.num_rows))


def concat_reduce(tables: list[pa.Table], reducer: int) -> pa.Table:
    return concat(tables)


def round_robin_map(table: pa.Table, part: Partition,
                    num_reducers: int) -> tuple[pa.Table, np.ndarray]:
    """repartition(shuffle=True): the dataset's row ``j`` goes to output ``j % n``, so
    every output takes rows from every input and sizes differ by at most one."""
    rows = (part.first_row + np.arange(table.num_rows)) % num_reducers
    return table, rows


def sort_map(table: pa.Table, part: Partition, num_reducers: int, *,
             key: sort_keys.SortKey, bounds: pa.Table) -> tuple[pa.Table, np.ndarray]:
    key.check(table, "sort")
    ranges = sort_keys.range_ids(table, bounds, key.first(bounds.column_names))
    return table, ranges


def sort_reduce(tables: list[pa.Table], reducer: int, key: sort_keys.SortKey) -> Gather:
    table = concat(tables)
    return Gather(table, sort_keys.order(table, key))


def aggregate_map(table: pa.Table, part: Partition, num_reducers: int, *,
                  spec: AggregationSpec, key: sort_keys.SortKey,
                  bounds: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Aggregate the partition's groups first (a state row per group), then send
    each state row to its key's range."""
    states = table if preaggregate.is_states(table) else spec.partial(table)
    if states.num_columns == 0:
        return states, np.zeros(0, np.int64)
    return states, sort_keys.range_ids(states, bounds, key)


def aggregate_reduce(tables: list[pa.Table], reducer: int,
                     spec: AggregationSpec) -> pa.Table:
    return spec.combine(tables)


# ---- the operations ------------------------------------------------------------------------
def random_shuffle(seed: int | None) -> Exchange:
    if seed is None:
        seed = secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"random_shuffle: seed must be an int >= 0 or None, got {seed!r}")
    return Exchange("RandomShuffle", functools.partial(random_map, seed=seed),
                    functools.partial(random_reduce, seed=seed))


def sort(key: sort_keys.SortKey, boundaries: list | None = None) -> Exchange:
    """``boundaries``: cut points of the first key column instead of sampled ones."""
    bounds = None
    if boundaries is not None:
        if not isinstance(boundaries, (list, tuple)):
            raise TypeError(f"sort: boundaries must be a list of values, got {boundaries!r}")
        bounds = pa.table({key.columns[0]: pa.array(list(boundaries))})
        if key.descending[0]:
            bounds = sort_keys.sort_table(bounds, key.first(bounds.column_names))
    return Exchange(f"Sort({', '.join(key.columns)})", functools.partial(sort_map, key=key),
                    functools.partial(sort_reduce, key=key), ranges=key, bounds=bounds)


def aggregate(spec: AggregationSpec) -> Exchange:
    key = sort_keys.SortKey(spec.keys, (False,) * len(spec.keys))
    return Exchange(f"Aggregate({', '.join(a.name for a in spec.aggs)})",
                    functools.partial(aggregate_map, spec=spec, key=key),
                    functools.partial(aggregate_reduce, spec=spec), ranges=key, spec=spec)


def repartition_shuffle(num_blocks: int) -> Exchange:
    return Exchange(f"Repartition[{num_blocks}, shuffle]", round_robin_map, concat_reduce,
                    num_outputs=num_blocks)


def _bars_on(ctx: Any) -> bool:
    """The shuffle's bars follow DataContext.enable_progress_bars (None: on a terminal;
    the shuffle library itself shows none unless asked)."""
    on = ctx.enable_progress_bars
    return sys.stderr.isatty() if on is None else bool(on)
