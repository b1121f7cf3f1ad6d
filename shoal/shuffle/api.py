"""``shuffle``, ``sort`` and ``random_shuffle``: check the arguments, describe the
job, start its driver thread and return the outputs' refs at once."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

import shoal
from shoal.shuffle import kernels
from shoal.shuffle.driver import ShuffleDriver, ShuffleJob, ShuffleStats
from shoal.shuffle.partitioning import MAX_PARTITIONS, boundaries_from_samples
from shoal.shuffle.records import check_records
from shoal.shuffle.schedule import Strategy
from shoal.shuffle.tasks import TASK_MAX_RETRIES

SAMPLE_PER_PARTITION = 128  # sampled keys per output partition, over all inputs
MIN_SAMPLE_PER_INPUT = 64

# A spilled input is read in place (shoal's option): only the pages of the sampled
# rows (~270 KB), where a restore read all 62.5 MB (section 20, "Out of core").
_remote_sample = shoal.remote(max_retries=TASK_MAX_RETRIES,
                              _read_args_in_place=True)(kernels.sample_input)
_remote_size = shoal.remote(max_retries=TASK_MAX_RETRIES)(kernels.array_size)


def _inputs(inputs: Any, what: str) -> list[Any]:
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise TypeError(f"{what}: inputs must be a list of input partitions (ObjectRefs or "
                        f"values), got {type(inputs).__name__}")
    if not inputs:
        raise ValueError(f"{what}: inputs is empty; give at least one input partition")
    return list(inputs)


def _count(value: Any, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTITIONS:
        raise ValueError(f"{what}: {name} must be an int in 1..{MAX_PARTITIONS}, got {value!r}")
    return value


def _reduce_returns(value: Any, what: str) -> int | str:
    if (isinstance(value, int) and not isinstance(value, bool) and value == 1) \
            or value == "dynamic":
        return value
    raise ValueError(f"{what}: reduce_num_returns must be 1 or 'dynamic', got {value!r}")


def _callable(fn: Any, name: str, what: str) -> Callable:
    if not callable(fn):
        raise TypeError(f"{what}: {name} must be callable, got {type(fn).__name__}")
    return fn


def _start(job: ShuffleJob, inputs: list[Any], stats: ShuffleStats | None) -> list:
    if not shoal.is_initialized():
        shoal.init()
    return ShuffleDriver(job, inputs, stats).start()


def shuffle(inputs: Sequence[Any], map_fn: Callable, reduce_fn: Callable, *,
            num_reducers: int, strategy: str | Strategy = "push",
            merge_fn: Callable | None = None, memory_budget: int | None = None,
            round_size: int | None = None, progress: bool | None = None,
            stats: ShuffleStats | None = None, partition_bytes: int | None = None,
            reduce_args: Callable[[int], tuple] | None = None,
            label: str = "shuffle",
            reduce_num_returns: int | str = 1) -> list[shoal.ObjectRef]:
    """Shuffle ``inputs`` (refs or values) into ``num_reducers`` outputs.

    ``map_fn(partition, num_reducers)`` returns one block per reducer (a
    generator that yields them holds one at a time: each is stored as it comes);
    if a map fails, every output fails with its error;
    ``merge_fn(*blocks)`` combines blocks of one reducer (default: concatenate
    numpy arrays or lists); ``reduce_fn(*blocks)`` makes one output.  Returns the
    outputs' refs in reducer order at once; a thread of this process runs the
    shuffle.  ``memory_budget``: bytes of unmerged map output allowed at once
    (default: a quarter of the object store); ``round_size``: maps per push
    round / per premerge group; ``progress``: progress bars in the driver's
    terminal (``tqdm_ray``): True shows them, False never, None (default) for a
    long shuffle whose caller writes to a terminal; ``stats``: a
    :class:`ShuffleStats` to follow it.
    ``partition_bytes``: an input's size when the inputs are refs (for the
    budget; numpy values say it themselves); ``reduce_args(r)``: extra trailing
    arguments of reducer ``r``'s ``reduce_fn``; ``label``: the progress bars' name.
    ``reduce_num_returns="dynamic"``: ``reduce_fn`` is a generator and each item
    it yields is an object of its own, stored as it is yielded (an output ref
    is then the generator's; ``shoal.get`` of it lists the items' refs); so a
    reducer can make several outputs, one in memory at a time, from one read
    of its blocks.
    Map, merge and reduce functions must be deterministic: lineage re-runs them.
    """
    what = "shuffle"
    job = ShuffleJob(
        map_fn=_callable(map_fn, "map_fn", what),
        merge_fn=_callable(merge_fn or kernels.concat_blocks, "merge_fn", what),
        reduce_fn=_callable(reduce_fn, "reduce_fn", what),
        num_reducers=_count(num_reducers, "num_reducers", what),
        strategy=Strategy.parse(strategy), memory_budget=memory_budget,
        round_size=round_size, progress=progress, label=label,
        reduce_num_returns=_reduce_returns(reduce_num_returns, what))
    if reduce_args is not None:
        job.reduce_args = _callable(reduce_args, "reduce_args", what)
    items = _inputs(inputs, what)
    job.partition_bytes = partition_bytes or _known_size(items)
    return _start(job, items, stats)


def sort(inputs: Sequence[Any], *, num_partitions: int, strategy: str | Strategy = "push",
         memory_budget: int | None = None, round_size: int | None = None,
         progress: bool | None = None, stats: ShuffleStats | None = None,
         ) -> list[shoal.ObjectRef]:
    """Sort gensort records: each input is a ``(n, 100) uint8`` array (10-byte key
    first).  Returns ``num_partitions`` refs of sorted arrays in key order: every
    key of output ``i`` is <= every key of output ``i + 1``.  Key ranges come
    from a sample of the inputs, so skewed keys still balance."""
    what = "sort"
    items = _inputs(inputs, what)
    partitions = _count(num_partitions, "num_partitions", what)
    job = ShuffleJob(
        map_fn=kernels.sort_map, merge_fn=kernels.merge_records,
        reduce_fn=kernels.sort_reduce, num_reducers=partitions,
        strategy=Strategy.parse(strategy), prepare=_sample_key_ranges,
        memory_budget=memory_budget, round_size=round_size, progress=progress, label=what)
    for m, item in enumerate(items):
        if not isinstance(item, shoal.ObjectRef):
            check_records(item, f"sort: input {m}")
    return _start(job, items, stats)


def random_shuffle(inputs: Sequence[Any], *, num_partitions: int, seed: int | None = None,
                   strategy: str | Strategy = "push", memory_budget: int | None = None,
                   round_size: int | None = None, progress: bool | None = None,
                   stats: ShuffleStats | None = None) -> list[shoal.ObjectRef]:
    """A uniformly random permutation of the rows (axis 0) of numpy-array inputs,
    spread over ``num_partitions`` outputs.  The same ``seed`` gives the same
    result; None draws one."""
    what = "random_shuffle"
    items = _inputs(inputs, what)
    partitions = _count(num_partitions, "num_partitions", what)
    if seed is None:
        seed = secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{what}: seed must be an int >= 0 or None, got {seed!r}")
    job = ShuffleJob(
        map_fn=kernels.random_map, merge_fn=kernels.merge_tagged,
        reduce_fn=kernels.random_reduce, num_reducers=partitions,
        strategy=Strategy.parse(strategy),
        map_args=lambda m: (seed, m), reduce_args=lambda r: (seed, r),
        memory_budget=memory_budget, round_size=round_size, progress=progress, label=what)
    job.partition_bytes = _known_size(items)
    if job.partition_bytes is None:
        job.prepare = _measure_inputs
    return _start(job, items, stats)


def _known_size(items: list[Any]) -> int | None:
    """The largest input's bytes if every input is a value that says (numpy)."""
    if any(isinstance(i, shoal.ObjectRef) or not hasattr(i, "nbytes") for i in items):
        return None
    return max(int(i.nbytes) for i in items) or None


def _sample_key_ranges(job: ShuffleJob, inputs: list[Any]) -> None:
    """sort's preparation, on the driver thread: sample every input's keys (in
    tasks), cut the key space at the sample's quantiles."""
    per_input = max(MIN_SAMPLE_PER_INPUT,
                    -(-SAMPLE_PER_PARTITION * job.num_reducers // len(inputs)))
    samples = shoal.get([_remote_sample.remote(x, per_input, m)
                         for m, x in enumerate(inputs)])
    bounds = boundaries_from_samples([s for s, _ in samples], job.num_reducers)
    job.map_args = lambda m: (bounds,)
    job.partition_bytes = max(size for _, size in samples) or None


def _measure_inputs(job: ShuffleJob, inputs: list[Any]) -> None:
    sizes = shoal.get([_remote_size.remote(x) for x in inputs])
    job.partition_bytes = max(sizes) or None
