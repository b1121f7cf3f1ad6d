"""The streaming executor's performer: turns the scheduler's actions
(schedule.py) into tasks, actor calls and ``wait``s, on one thread of the
driver, and hands finished blocks to the consumer through a bounded queue.

::

    consumer thread                     executor thread
    outputs() <- queue <- Emit ------- Schedule.task_done <- get(meta) <- wait(tasks)
       |                               Submit -> stage_fn.remote(*items) -> (block, meta)
       +-- released(handle) ---------> events queue -> Schedule.released

The thread owns the schedule; the consumer talks to it only through two
queues, so the scheduler needs no lock.  A task's metadata ref is small
(inline), so the thread learns rows and bytes without fetching a block.
Errors (a user function raising, a worker dying past its retries) stop the
run: running tasks are cancelled, actors killed, and the consumer's next
``outputs()`` step raises the task's error, which names the stage and the
rows that failed.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import shoal
from shoal.data.actor_pool import ActorPool, PoolActor, pool_bounds
from shoal.data.block import BlockMetadata
from shoal.data.context import DataContext
from shoal.data.exchange import block_sampler
from shoal.data.plan import AllToAll, Compute, LogicalOp
from shoal.data.planner import BeingMade, PhysicalPlan, Stage, plan
from shoal.data.progress import Progress
from shoal.data.schedule import (
    Cancel,
    Emit,
    Finish,
    Output,
    Release,
    Schedule,
    StageKind,
    Submit,
)
from shoal.data.stage_task import StageActor, StageProgram, slice_block, task_function
from shoal.data.stats import ExecutionStats, StageStats

POLL_S = 0.05
TASK_MAX_RETRIES = 3
ACTOR_TASKS_IN_FLIGHT = 2  # per actor: one running, one queued behind it
ROOM_CHECK_S = 0.5  # an autoscaling pool asks for free CPUs at most this often
# emitted blocks the consumer may leave untaken before no task starts
# (schedule.py, "The budget is a ceiling"): the quick iter_batches row held
# its whole 125 MB input in the store without it
BACKLOG_PER_CPU = 2

# no CPU: a limit after an actor pool holding every CPU still gets its slice
_remote_slice = shoal.remote(num_returns=2, num_cpus=0,
                             max_retries=TASK_MAX_RETRIES)(slice_block)


@dataclass
class _Task:
    """A task of this run.  ``waited``: the ref whose readiness ends it (a stage
    task's generator ref, or the metadata ref of a one-block task: a limit's
    slice, an adopted reduce); ``block``: that one block's ref, else None."""

    waited: Any
    block: Any
    stage: int
    actor: PoolActor | None = None  # the pool's actor running it


@dataclass(frozen=True)
class RefBundle:
    """A block the consumer gets: its ref and what is known about it."""

    ref: Any
    metadata: BlockMetadata


class _Stop:
    """Sentinel on the output queue: the run is over (error or not)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def cluster_shape() -> tuple[float, float]:
    """(CPUs, object store bytes) of the cluster, starting shoal if needed."""
    if not shoal.is_initialized():
        shoal.init()
    res = shoal.cluster_resources()
    return float(res.get("CPU", 1.0)), float(res.get("object_store_memory", 1 << 30))


def memory_budget(ctx: DataContext, store_bytes: float) -> int:
    limit = ctx.execution_options.resource_limits.object_store_memory
    if limit:
        return int(limit)
    return max(1, int(store_bytes * ctx.object_store_budget_fraction))


class StreamingExecutor:
    """``sampler``: the run feeds a sort or groupby; the tasks making its output
    blocks sample their keys (a sort_keys.BlockSampler) into the metadata."""

    def __init__(self, root: LogicalOp, *, ctx: DataContext | None = None,
                 progress: bool | None = None, label: str = "", sampler: Any = None,
                 combiner: Any = None) -> None:
        self.ctx = ctx or DataContext.get_current()
        self.root = root
        self.sampler = sampler
        self.combiner = combiner
        self.progress_on = self.ctx.enable_progress_bars if progress is None else progress
        self.label = label
        self.stats = ExecutionStats()
        self._out: queue.Queue = queue.Queue()
        self._events: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._objects: dict[int, Any] = {}
        self._metas: dict[int, BlockMetadata] = {}
        self._tasks: dict[int, _Task] = {}
        self._by_ref: dict[Any, int] = {}  # _Task.waited -> task
        self._stage_fns: dict[int, Any] = {}
        self._pools: dict[int, ActorPool] = {}  # actor stage -> its pool
        self._room_checked: dict[int, float] = {}  # pool -> when free CPUs were last asked

    # ---- the consumer's side ---------------------------------------------------

    def start(self) -> StreamingExecutor:
        cpus, store = cluster_shape()
        self.cpus = cpus
        self.budget = memory_budget(self.ctx, store)
        started = time.perf_counter()
        self.physical: PhysicalPlan = plan(self.root, self._run_all_to_all)
        self._objects.update(self.physical.objects)
        if self.sampler is not None or self.combiner is not None:
            for stage in self._makers_of_output():
                stage.sampler, stage.combiner = self.sampler, self.combiner
        for stage in self.physical.stages:
            if stage.kind in (StageKind.SOURCE, StageKind.EXCHANGE):
                for item in stage.items:
                    obj = self._objects[item.handle]
                    if isinstance(obj, shoal.ObjectRef) and item.rows is not None:
                        self._metas[item.handle] = BlockMetadata(item.rows, item.size, None)
        specs = [s.spec(self._max_running(s)) for s in self.physical.stages]
        self.schedule = Schedule(specs, self.budget,
                                 default_estimate=min(self.ctx.target_max_block_size,
                                                      max(1, self.budget // 8)),
                                 max_backlog=max(2, round(BACKLOG_PER_CPU * cpus)))
        self.stats.start(self.physical.stages, self.budget, started)
        self.progress = Progress([s.name for s in self.physical.stages
                                  if s.kind is StageKind.MAP], self.progress_on)
        self._thread = threading.Thread(target=self._run, name="shoal-data-executor",
                                        daemon=True)
        self._thread.start()
        return self

    def _makers_of_output(self) -> list[Stage]:
        """The MAP stages whose blocks reach the output unchanged (through unions)."""
        stages, found = self.physical.stages, []
        todo = list(stages[-1].upstream)
        while todo:
            stage = stages[todo.pop()]
            if stage.kind is StageKind.UNION:
                todo.extend(stage.upstream)
            elif stage.kind is StageKind.MAP:
                found.append(stage)
        return found

    def outputs(self) -> Iterator[RefBundle]:
        """The blocks in order.  Taking one tells the executor the consumer has it
        (it leaves the budget: the consumer's own holdings are bounded by its
        prefetch)."""
        try:
            while True:
                got = self._out.get()
                if isinstance(got, _Stop):
                    if got.error is not None:
                        raise got.error
                    return
                handle, bundle = got
                self._events.put(handle)
                yield bundle
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    # ---- the thread ------------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._perform(self.schedule.start())
            while not self.schedule.finished and not self._stopping.is_set():
                self._step()
                self._autoscale()
        except BaseException as exc:  # the consumer raises it
            error = exc
        finally:
            self._cleanup()
            self.stats.finish(self.schedule, time.perf_counter())
            self.progress.close()
            self._out.put(_Stop(error))

    def _step(self) -> None:
        while True:
            try:
                handle = self._events.get_nowait()
            except queue.Empty:
                break
            self._perform(self.schedule.released(handle))
        waiting = list(self._by_ref)
        if not waiting:
            try:
                handle = self._events.get(timeout=POLL_S)
            except queue.Empty:
                return
            self._perform(self.schedule.released(handle))
            return
        ready, _ = shoal.wait(waiting, num_returns=1, timeout=POLL_S)
        if not ready:
            return
        if len(waiting) > 1:
            ready, _ = shoal.wait(waiting, num_returns=len(waiting), timeout=0)
        for ref in ready:
            if ref in self._by_ref:  # not cancelled by an earlier one
                self._finish_task(ref)

    def _finish_task(self, ref: Any) -> None:
        task = self._by_ref.pop(ref)
        entry = self._tasks.pop(task)
        if entry.actor is not None:
            entry.actor.in_flight -= 1
        if entry.block is None:  # a stage task: its blocks, then their metadata
            items = list(shoal.get(ref))
            metas: list[BlockMetadata] = shoal.get(items[-1])  # raises the task's error
            blocks = items[:-1]
        else:
            metas, blocks = [shoal.get(ref)], [entry.block]
        outputs = []
        for block, meta in zip(blocks, metas, strict=True):
            handle = next(self.physical.next_handle)
            self._objects[handle] = block
            self._metas[handle] = meta
            outputs.append(Output(handle=handle, rows=meta.num_rows, size=meta.size_bytes))
        self.stats.task_done(entry.stage, metas)
        st = self.physical.stages[entry.stage]
        if st.kind is StageKind.MAP:
            self.progress.update(st.name, sum(m.num_rows for m in metas))
        self._perform(self.schedule.task_done(task, outputs))

    def _perform(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Submit):
                self._submit(action)
            elif isinstance(action, Release):
                for h in action.handles:
                    self._objects.pop(h, None)
                    self._metas.pop(h, None)
            elif isinstance(action, Emit):  # the consumer's now: this run keeps no ref
                h = action.item.handle
                self._out.put((h, RefBundle(self._objects.pop(h), self._metas.pop(h))))
            elif isinstance(action, Cancel):
                self._cancel(action.tasks)
            elif isinstance(action, Finish):
                pass

    def _submit(self, action: Submit) -> None:
        args = [self._objects[i.handle] for i in action.items]
        stage = self.physical.stages[action.stage]
        key = action.items[0].key
        if stage.kind is StageKind.EXCHANGE:  # adopt the task making it (a reduce)
            made: BeingMade = args[0]
            entry = _Task(made.metadata, made.block, action.stage)
        elif action.slice_rows is not None:
            block_ref, meta_ref = _remote_slice.remote(args[0], action.slice_rows)
            entry = _Task(meta_ref, block_ref, action.stage)
        elif stage.compute is Compute.ACTORS:
            actor = self._pool(action.stage, stage).pick()
            actor.in_flight += 1
            ref = actor.handle.run.options(num_returns="dynamic").remote(*args, _key=key)
            entry = _Task(ref, None, action.stage, actor)
        else:
            entry = _Task(self._stage_fn(action.stage, stage).remote(*args, _key=key), None,
                          action.stage)
        self._tasks[action.task] = entry
        self._by_ref[entry.waited] = action.task

    def _cancel(self, tasks: tuple[int, ...]) -> None:
        for task in tasks:
            entry = self._tasks.pop(task, None)
            if entry is None:
                continue
            self._by_ref.pop(entry.waited, None)
            if entry.actor is not None:
                entry.actor.in_flight -= 1
            elif self.physical.stages[entry.stage].kind is not StageKind.EXCHANGE:  # ours
                try:
                    shoal.cancel(entry.waited if entry.block is None else entry.block)
                except Exception:  # finished already, or not cancellable: let it be
                    pass

    def _cleanup(self) -> None:
        self._cancel(tuple(self._tasks))
        for pool in self._pools.values():
            for actor in pool.actors:
                _kill(actor)
        self._pools.clear()
        self._objects.clear()

    # ---- stages ------------------------------------------------------------------

    def _cpus_per_task(self, stage: Stage) -> float:
        return float(stage.remote_args.get("num_cpus", 1) or 0)

    def _pool_bounds(self, stage: Stage) -> tuple[int, int, int]:
        per = self._cpus_per_task(stage)
        fits = max(1, math.floor(self.cpus / per)) if per else max(1, int(self.cpus))
        return pool_bounds(stage.concurrency, fits)

    def _max_running(self, stage: Stage) -> int:
        if stage.kind is StageKind.LIMIT:
            return 1
        if stage.kind is not StageKind.MAP:
            return 0
        if stage.compute is Compute.ACTORS:
            return self._pool_bounds(stage)[2] * ACTOR_TASKS_IN_FLIGHT
        per = self._cpus_per_task(stage)
        slots = max(1, math.floor(self.cpus / per)) if per else max(1, int(2 * self.cpus))
        if stage.concurrency:
            return max(1, min(int(stage.concurrency), slots) if per else int(stage.concurrency))
        return slots

    def _remote_options(self, stage: Stage) -> dict:
        opts = {"num_cpus": 1, **stage.remote_args}
        return opts

    def _program(self, stage: Stage) -> StageProgram:
        return StageProgram(stage.name, stage.transforms, stage.sampler,
                            max_block_bytes=self.ctx.target_max_block_size,
                            combiner=stage.combiner)

    def _stage_fn(self, index: int, stage: Stage) -> Any:
        fn = self._stage_fns.get(index)
        if fn is None:
            program = self._program(stage)
            fn = shoal.remote(num_returns="dynamic", max_retries=TASK_MAX_RETRIES,
                              **self._remote_options(stage))(task_function(program))
            self._stage_fns[index] = fn
        return fn

    def _pool(self, index: int, stage: Stage) -> ActorPool:
        pool = self._pools.get(index)
        if pool is None:
            low, high, initial = self._pool_bounds(stage)
            pool = ActorPool(low, high, ACTOR_TASKS_IN_FLIGHT)
            self._pools[index] = pool
            for _ in range(initial):
                pool.actors.append(PoolActor(self._new_actor(index, stage)))
        return pool

    def _new_actor(self, index: int, stage: Stage) -> Any:
        cls = self._stage_fns.get(index)
        if cls is None:
            cls = self._stage_fns[index] = shoal.remote(**self._remote_options(stage))(
                StageActor)
        return cls.remote(self._program(stage))

    def _autoscale(self) -> None:
        """Grow or shrink the autoscaling pools (actor_pool.py)."""
        for index, pool in self._pools.items():
            if not pool.autoscaling:
                continue
            load = self.schedule.load(index)
            stage = self.physical.stages[index]
            if pool.should_grow(load.waiting > 0, load.running) and self._room_for(index, stage):
                pool.actors.append(PoolActor(self._new_actor(index, stage)))
            elif not load.waiting and load.inputs_done:
                for actor in pool.idle_beyond_min():
                    pool.remove(actor)
                    _kill(actor)
            else:
                continue
            self._perform(self.schedule.resize(index, pool.capacity))

    def _room_for(self, index: int, stage: Stage) -> bool:
        """Free CPUs for one more actor (asked at most every ROOM_CHECK_S per pool)."""
        now = time.monotonic()
        if now - self._room_checked.get(index, -ROOM_CHECK_S) < ROOM_CHECK_S:
            return False
        self._room_checked[index] = now
        need = float(self._remote_options(stage).get("num_cpus", 1) or 0)
        return shoal.available_resources().get("CPU", 0.0) >= need

    def _run_all_to_all(self, op: AllToAll) -> tuple[list, list]:
        """Run the input of ``op`` to the end (a nested executor) and start ``op``.
        Its outputs' refs come back at once; this run drops the input's refs here,
        so the maps hold each input block only until they have read it."""
        sampler = None if op.sample_key is None else block_sampler(op.sample_key, self.ctx)
        inner = StreamingExecutor(op.input, ctx=self.ctx, progress=self.progress_on,
                                  label=op.name, sampler=sampler,
                                  combiner=op.combiner).start()
        refs, metas = [], []
        for bundle in inner.outputs():
            refs.append(bundle.ref)
            metas.append(bundle.metadata)
        self.stats.children.append(inner.stats)
        return op.run(refs, metas)


def _kill(actor: PoolActor) -> None:
    try:
        shoal.kill(actor.handle)
    except Exception:  # gone already
        pass


def stage_stats(stats: ExecutionStats) -> list[StageStats]:
    return stats.stages
