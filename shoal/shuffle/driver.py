"""The performer: carries out a schedule's actions with shoal calls, on a thread
of the driver, and feeds back what finished (``shoal.wait``).

``ShuffleDriver.start()`` makes the placeholder actor and submits every
output's reduce task at once (their argument is the actor's answer, see
tasks.py), starts the thread and returns the outputs' refs.  The thread then:

1. runs the job's ``prepare`` (sort: sample the inputs for key ranges),
2. builds the schedule with limits from the cluster's CPUs and store size
   (budget.py),
3. loops: ``wait`` for any map, merge or reduce to finish; tell the schedule;
   perform its actions: submit a map (``num_returns=R+1``), submit a merge
   (soft affinity to its node), or *release* a reducer: ``fill`` the
   placeholder with its blocks' refs.

The thread holds each block's ref only until the merge that reads it, or the
reducer's placeholder, has it; after that the consumer's reference keeps it
alive, and lineage can rebuild it.  If the thread fails, every reducer not
yet released gets the error through the placeholder (no ``get`` hangs).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shoal
from shoal.shuffle.budget import default_budget, plan_limits
from shoal.shuffle.placement import Spreader
from shoal.shuffle.premerge import PremergeSchedule
from shoal.shuffle.progress import Progress
from shoal.shuffle.push import PushSchedule, node_of_reducer
from shoal.shuffle.schedule import (
    Action,
    Counts,
    Limits,
    ReleaseReducer,
    Schedule,
    Strategy,
    SubmitMap,
    SubmitMerge,
)
from shoal.shuffle.simple import SimpleSchedule
from shoal.shuffle.tasks import (
    Sources,
    TaskInfo,
    map_task,
    merge_task,
    reduce_generator_task,
    reduce_task,
)
from shoal.util.scheduling_strategies import NodeAffinitySchedulingStrategy

log = logging.getLogger("shoal.shuffle")

POLL_S = 1.0  # the thread checks for shutdown this often while it waits
# The Sources actor's own runtime env (a marker variable): a worker is reused
# only in its runtime env, so the actor gets a fresh fork instead of an idle
# task worker, which has the maps' libraries loaded (pyarrow: ~40-70 MB), while
# a new task worker would then be forked and load them again (design.md 21)
SOURCES_RUNTIME_ENV = {"env_vars": {"SHOAL_SHUFFLE_SOURCES": "1"}}


class Kind(enum.Enum):
    MAP = "map"
    MERGE = "merge"
    REDUCE = "reduce"


@dataclass
class ShuffleJob:
    """How to shuffle; ``prepare(job, inputs)`` (run on the thread, before the first
    map) may fill in ``map_args`` and ``partition_bytes``."""

    map_fn: Callable
    merge_fn: Callable
    reduce_fn: Callable
    num_reducers: int
    strategy: Strategy
    map_args: Callable[[int], tuple] = lambda m: ()
    reduce_args: Callable[[int], tuple] = lambda r: ()
    prepare: Callable[[ShuffleJob, list[Any]], None] | None = None
    partition_bytes: int | None = None
    memory_budget: int | None = None
    round_size: int | None = None
    progress: bool | None = None
    label: str = "shuffle"
    reduce_num_returns: int | str = 1  # or "dynamic": reduce_fn yields its outputs


@dataclass
class ShuffleStats:
    """Filled in by the driver thread as the shuffle runs (pass one to follow it).
    Stage times are seconds from the call: first submission, last completion."""

    started: float = field(default_factory=time.perf_counter)
    limits: Limits | None = None
    counts: Counts = field(default_factory=Counts)
    stages: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    trace: list[tuple[float, str, str, int, str | None]] | None = None  # set to a list
    #     to record (seconds, "submit" | "done", stage, id, node) of every task

    def mark(self, stage: str, begin: bool, ident: int = -1, node: str | None = None) -> None:
        now = time.perf_counter() - self.started
        span = self.stages.setdefault(stage, [now, now])
        if not begin:
            span[1] = now
        if self.trace is not None:
            self.trace.append((now, "submit" if begin else "done", stage, ident, node))

    def wait(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)


@dataclass(frozen=True)
class ClusterShape:
    node_cpus: dict[str, float]  # alive nodes with CPUs, the driver's first
    store_bytes: float

    @property
    def nodes(self) -> list[str]:
        return list(self.node_cpus)

    @property
    def cpus(self) -> float:
        return sum(self.node_cpus.values())

    @classmethod
    def now(cls) -> ClusterShape:
        here = shoal.get_runtime_context().get_node_id()
        found = [(n["NodeID"], n["Resources"].get("CPU", 0)) for n in shoal.nodes()
                 if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
        found.sort(key=lambda node: node[0] != here)
        store = shoal.cluster_resources().get("object_store_memory", 0)
        return cls(dict(found) or {here: 1.0}, store)


def input_of(map_id: int, num_maps: int) -> int:
    """The input that map ``map_id`` (in submission order) takes: the last input
    first.  Whatever was touched last is what an object store that spills least
    recently used objects still holds in memory: the inputs made last, and the
    inputs sampled last (sort samples them in order, first to last).  Taken
    first to last, the maps met the inputs the store had just spilled and, out of
    core, the store wrote out the unmapped inputs still in memory to make room for
    merged blocks, then read them back (2 GB sort on a 1 GiB store: 0.75 GB
    written and read again, section 20 of docs/design.md)."""
    return num_maps - 1 - map_id


def _affinity(node: str | None) -> dict:
    if node is None:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=True)}


class ShuffleDriver:
    def __init__(self, job: ShuffleJob, inputs: list[Any],
                 stats: ShuffleStats | None = None) -> None:
        self.job = job
        self.stats = stats or ShuffleStats()
        self.shape = ClusterShape.now()
        self.inputs = inputs  # entries are dropped as their maps take them
        self.blocks: dict[int, list] = {}  # map id -> its block refs (None once handed on)
        self.merged: dict[int, dict[int, Any]] = {}  # merge id -> {reducer: block ref}
        self.waiting: dict[Any, tuple[Kind, int]] = {}  # info/output ref -> what it is
        self.outputs: list[Any] = []
        self.sources: Any = None
        self.progress: Progress | None = None
        self.spreader = Spreader(dict(self.shape.node_cpus))
        self.map_node: dict[int, str] = {}  # running map -> the node it was sent to
        self.merge_node: dict[int, str | None] = {}  # running merge -> its node
        self.holding: dict[int, list] = {}  # released reducer -> its block refs

    # ---- the caller's thread -------------------------------------------------------------
    def start(self) -> list[Any]:
        job = self.job
        here = shoal.get_runtime_context().get_node_id()
        self.sources = Sources.options(
            max_concurrency=job.num_reducers + 16,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            runtime_env=SOURCES_RUNTIME_ENV,
        ).remote(job.num_reducers)
        self.reducer_nodes = [node_of_reducer(r, job.num_reducers, self.shape.nodes)
                              for r in range(job.num_reducers)]
        # The outputs are cold (a shoal option): out of core, the store must write
        # something out as each reduce stores its output, and LRU picked the merged
        # blocks the later reduces read back, never the outputs, read after the
        # shuffle (docs/design.md section 20, "Out of core").
        for r, node in enumerate(self.reducer_nodes):
            task = reduce_task if job.reduce_num_returns == 1 else reduce_generator_task
            self.outputs.append(task.options(
                num_returns=job.reduce_num_returns, _cold_returns=True,
                **_affinity(node)).remote(
                job.reduce_fn, self.sources.sources.remote(r), *job.reduce_args(r)))
        thread = threading.Thread(target=self._run, name="shoal-shuffle", daemon=True)
        thread.start()
        return list(self.outputs)

    # ---- the driver thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.job.prepare is not None:
                self.job.prepare(self.job, self.inputs)
            schedule = self._schedule()
            self.progress = Progress(self.job.label, len(self.inputs),
                                     _merges_expected(schedule), self.job.num_reducers,
                                     self.job.progress)
            self._loop(schedule)
        except BaseException as exc:  # noqa: BLE001 (reported through every output)
            self._fail(exc)
        finally:
            if self.progress is not None:
                self.progress.close()
            self.blocks.clear()
            self.merged.clear()
            self.holding.clear()
            self.waiting.clear()
            self.stats.finished.set()

    def _schedule(self) -> Schedule:
        job, shape = self.job, self.shape
        budget = job.memory_budget or default_budget(shape.store_bytes)
        limits = plan_limits(job.strategy, num_maps=len(self.inputs), cpus=shape.cpus,
                             nodes=len(shape.nodes), partition_bytes=job.partition_bytes,
                             budget_bytes=budget, round_size=job.round_size)
        self.stats.limits = limits
        shape_args = (len(self.inputs), job.num_reducers, limits, self.stats.counts,
                      list(self.reducer_nodes))
        if job.strategy is Strategy.SIMPLE:
            return SimpleSchedule(*shape_args)
        if job.strategy is Strategy.PREMERGE:
            return PremergeSchedule(*shape_args)
        return PushSchedule(*shape_args, nodes=list(shape.nodes))

    def _loop(self, schedule: Schedule) -> None:
        self._perform(schedule.start())
        while self.waiting:
            if not shoal.is_initialized():
                return
            refs = list(self.waiting)
            ready, rest = shoal.wait(refs, num_returns=1, timeout=POLL_S)
            if ready and rest:  # take everything else that is ready too
                more, _ = shoal.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                kind, ident = self.waiting.pop(ref)
                if kind is Kind.MAP:
                    node = self.map_node.pop(ident)
                    self.spreader.give_back(node)
                    self.stats.mark("map", False, ident, node)
                    info = self._map_info(ref)
                    if not isinstance(info, TaskInfo):
                        self._fail_outputs(ref, info)
                        return
                    self._perform(schedule.map_done(ident, info.node_id))
                elif kind is Kind.MERGE:
                    self.spreader.give_back(self.merge_node.pop(ident))
                    self.stats.mark("merge", False, ident)
                    self._perform(schedule.merge_done(ident))
                else:
                    self.stats.mark("reduce", False, ident)
                    self.holding.pop(ident, None)
                    self._perform(schedule.reduce_done(ident))
            self._show(schedule.counts)

    @staticmethod
    def _map_info(info_ref: Any) -> TaskInfo | BaseException:
        """A finished map's TaskInfo, or the error that failed it (after its retries)."""
        try:
            return shoal.get(info_ref, timeout=60)
        except Exception as exc:  # noqa: BLE001
            return exc

    def _fail_outputs(self, info_ref: Any, error: BaseException) -> None:
        """A map failed: every output fails with its error, raised by each reduce
        as it reads ``info_ref`` among its sources.  (Before the failed map is done,
        no reducer has its blocks.  A generator map_fn may have stored some blocks
        before it failed: they are dropped with the rest.)"""
        self.stats.error = f"a map failed: {type(error).__name__}: {error}"
        for r in range(self.job.num_reducers):
            self.sources.fill.remote(r, [info_ref])
        self.waiting.clear()

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SubmitMap):
                self._submit_map(action.map_id)
            elif isinstance(action, SubmitMerge):
                self._submit_merge(action)
            elif isinstance(action, ReleaseReducer):
                self._release(action)

    def _submit_map(self, m: int) -> None:
        job = self.job
        node = self.map_node[m] = self.spreader.take()
        self.stats.mark("map", True, m, node)
        i = input_of(m, len(self.inputs))
        refs = map_task.options(num_returns=job.num_reducers + 1, **_affinity(node)).remote(
            job.map_fn, self.inputs[i], job.num_reducers, *job.map_args(i))
        self.inputs[i] = None  # the map holds it now
        self.blocks[m] = list(refs[:-1])
        self.waiting[refs[-1]] = (Kind.MAP, m)

    def _submit_merge(self, merge: SubmitMerge) -> None:
        self.stats.mark("merge", True, merge.merge_id, merge.node)
        self.merge_node[merge.merge_id] = merge.node
        self.spreader.add(merge.node)
        args = []
        for r in merge.reducers:
            for m in merge.maps:
                args.append(self.blocks[m][r])
                self.blocks[m][r] = None
        refs = merge_task.options(num_returns=len(merge.reducers) + 1,
                                  **_affinity(merge.node)).remote(
            self.job.merge_fn, len(merge.maps), *args)
        del args
        self.merged[merge.merge_id] = dict(zip(merge.reducers, refs[:-1], strict=True))
        self.waiting[refs[-1]] = (Kind.MERGE, merge.merge_id)

    def _release(self, release: ReleaseReducer) -> None:
        r = release.reducer
        self.stats.mark("reduce", True, r, release.node)
        refs = []
        for m in release.maps:
            refs.append(self.blocks[m][r])
            self.blocks[m][r] = None
        for j in release.merges:
            refs.append(self.merged[j].pop(r))
            if not self.merged[j]:
                del self.merged[j]
        self.sources.fill.remote(r, refs)
        # Kept until the reduce is done: the actor hands the refs back to us, their
        # owner, and its release of them can reach us before its answer (which
        # makes our copy of the list hold them); without this a block was freed
        # under a reduce (ObjectFreedError, 4 GB simple sort).
        self.holding[r] = refs
        self.waiting[self.outputs[r]] = (Kind.REDUCE, r)

    def _show(self, counts: Counts) -> None:
        if self.progress is not None:
            self.progress.set("maps", counts.maps_done)
            self.progress.set("merges", counts.merges_done)
            self.progress.set("reduces", counts.reduces_done)

    def _fail(self, exc: BaseException) -> None:
        message = f"the shuffle's driver thread failed: {type(exc).__name__}: {exc}"
        self.stats.error = message
        if not shoal.is_initialized():
            return
        log.error("%s", message, exc_info=exc)
        try:
            self.sources.fail.remote(message)
        except Exception:  # noqa: BLE001 (shutting down)
            pass


def _merges_expected(schedule: Schedule) -> int | None:
    if isinstance(schedule, SimpleSchedule):
        return 0
    if isinstance(schedule, PushSchedule):
        return schedule.num_rounds * len(schedule.groups)
    return None
