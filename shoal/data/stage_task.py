"""What runs inside a map task or a map actor: read the inputs (blocks or read
tasks), push them through the fused transforms and yield the output as
blocks of at most ``max_block_bytes`` (Ray's ``target_max_block_size``), then
the list of their metadata.

The task runs with ``num_returns="dynamic"``: each block is an object of its
own (a batch ten times the target makes ten blocks, which later tasks take
one at a time and the store can spill one at a time), and lineage can make
them again (a generator task's items are rebuilt like any return).  The
metadata, small, is the last item: the executor reads it without fetching
a block.
"""

from __future__ import annotations

import dataclasses
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from shoal.data.block import (
    BlockMetadata,
    blocks_of,
    compact,
    metadata_of,
    release_unused_memory,
)
from shoal.data.plan import ReadTask
from shoal.data.transforms import Transform

DEFAULT_MAX_BLOCK_BYTES = 128 << 20


@dataclass
class StageProgram:
    name: str
    transforms: list[Transform]
    # set when the run feeds a sort or groupby: sample each block's keys as it is made
    sampler: Any = None
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES  # DataContext.target_max_block_size
    # set when the run feeds a groupby: a block of few groups is yielded as its
    # partial states (preaggregate.PartialAggregation)
    combiner: Any = None

    def setup(self) -> None:
        for t in self.transforms:
            t.setup()


def _inputs(items: tuple[Any, ...]) -> Iterator[pa.Table]:
    for item in items:
        if isinstance(item, ReadTask):
            yield from item.read()
        else:
            yield item


def run_stage(program: StageProgram, items: tuple[Any, ...],
              key: tuple = ()) -> Iterator[Any]:
    """Yields the output blocks, then their metadata (a list).  ``key``: the
    task's place in the dataset's order (writers name files by it).  A block's
    times are the task's so far: the last one's are the whole task's."""
    start, cpu = time.perf_counter(), time.process_time()
    release_unused_memory()  # what the last task freed
    stream: Iterator[pa.Table] = _inputs(items)
    for transform in program.transforms:
        bind = getattr(transform, "bind", None)
        stream = (bind(key) if bind else transform).apply(stream)
    metas: list[BlockMetadata] = []
    for block in blocks_of(stream, program.max_block_bytes):
        seed = zlib.crc32(repr(key + (len(metas),)).encode())
        sample = None if program.sampler is None else program.sampler(block, seed)
        states = None if program.combiner is None else program.combiner(block, seed)
        if states is not None:
            block = compact(states)
        meta = metadata_of(block, time.perf_counter() - start, time.process_time() - cpu,
                           node=str(os.getpid()))
        if sample is not None or states is not None:
            meta = dataclasses.replace(meta, sample=sample, states=states is not None)
        metas.append(meta)
        yield block
        del block
    release_unused_memory()
    yield metas


def task_function(program: StageProgram):
    """A plain function for ``shoal.remote``, named after the stage (errors say
    which stage failed)."""
    def run(*items: Any, _key: tuple = ()) -> Iterator[Any]:
        yield from run_stage(program, items, _key)

    run.__name__ = run.__qualname__ = f"data[{program.name}]"
    return run


class StageActor:
    """One actor of a map stage's pool: the callable classes are constructed once
    here and reused for every bundle."""

    def __init__(self, program: StageProgram) -> None:
        self.program = program
        program.setup()

    def run(self, *items: Any, _key: tuple = ()) -> Iterator[Any]:
        yield from run_stage(self.program, items, _key)

    def ready(self) -> bool:
        return True


def slice_block(block: pa.Table, rows: int) -> tuple[pa.Table, BlockMetadata]:
    out = compact(block.slice(0, rows))
    return out, metadata_of(out)
